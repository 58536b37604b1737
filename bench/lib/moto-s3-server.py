"""moto's S3 server (`moto_server`), with its writes made atomic as on AWS S3.

moto honours `If-None-Match: *` on PutObject and CompleteMultipartUpload, but checks the key and then
writes it in two steps on a threaded server: two concurrent create-only writers of one key can both
pass the check and both "win". AWS S3 (and MinIO) decide such races atomically, and the store's
create-only rule relies on that. So this launcher runs moto's own application exactly as
`moto_server` does, with one lock around every request that writes (PUT, POST, DELETE); reads stay
concurrent. Usage: python moto-s3-server.py -H 127.0.0.1 -p PORT
"""
import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

WRITES = {"PUT", "POST", "DELETE"}


def atomic_writes(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        if environ.get("REQUEST_METHOD") not in WRITES:
            return app(environ, start_response)
        with lock:
            # The body is produced inside the lock too: moto may do its work lazily.
            return list(app(environ, start_response))

    return wrapped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, atomic_writes(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
