/**
 * TEST AND BENCH ONLY: a node that serves corrupt frames. Loaded before the program with
 * `node --import bench/lib/corrupt-serve.ts` (NODE_OPTIONS), it wraps the content server's provider so
 * every frame this node sends to a peer (from its own builds, its frame store, or anything else it
 * serves) has one byte flipped, in a copy: the node's own reads and its stores are untouched. The
 * product never loads this; it stands in for a disk, a memory or a peer gone bad.
 */
import { ContentServer } from '../../src/p2p/content/server.ts'
import type { FramesAnswer, PeerContentProvider } from '../../src/p2p/content/types.ts'

function flipped(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes)
  if (copy.byteLength > 0) copy[copy.byteLength >> 1] ^= 0x5a
  return copy
}

function corrupting(inner: PeerContentProvider): PeerContentProvider {
  return {
    // A frame that goes out with a header is a frame this node sends too.
    async getHeader(id, kind, signal, opts) {
      const ans = await inner.getHeader(id, kind, signal, opts)
      return ans.status === 'OK' && ans.frame ? { ...ans, frame: { ...ans.frame, bytes: flipped(ans.frame.bytes) } } : ans
    },
    getBlob: (id, name, signal) => inner.getBlob(id, name, signal),
    async getFrames(id, kind, codec, ranges, signal, opts): Promise<FramesAnswer> {
      const ans = await inner.getFrames(id, kind, codec, ranges, signal, opts)
      if (ans.status !== 'OK') return ans
      const batch = ans.batch
      return {
        status: 'OK',
        batch: { frame: async (i, s) => flipped(await batch.frame(i, s)), release: () => batch.release?.() },
      }
    },
  }
}

const start = ContentServer.prototype.start
ContentServer.prototype.start = function (this: ContentServer): Promise<void> {
  const self = this as unknown as { provider: PeerContentProvider }
  self.provider = corrupting(self.provider)
  return start.call(this)
}
