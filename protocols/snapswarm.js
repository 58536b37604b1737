import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime';
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc';
export var Status;
(function (Status) {
    Status["STATUS_UNSPECIFIED"] = "STATUS_UNSPECIFIED";
    Status["OK"] = "OK";
    Status["NOT_AVAILABLE"] = "NOT_AVAILABLE";
    Status["USE_STORAGE"] = "USE_STORAGE";
    Status["UPLOAD_FAILED"] = "UPLOAD_FAILED";
    Status["BUSY"] = "BUSY";
})(Status || (Status = {}));
var __StatusValues;
(function (__StatusValues) {
    __StatusValues[__StatusValues["STATUS_UNSPECIFIED"] = 0] = "STATUS_UNSPECIFIED";
    __StatusValues[__StatusValues["OK"] = 1] = "OK";
    __StatusValues[__StatusValues["NOT_AVAILABLE"] = 2] = "NOT_AVAILABLE";
    __StatusValues[__StatusValues["USE_STORAGE"] = 3] = "USE_STORAGE";
    __StatusValues[__StatusValues["UPLOAD_FAILED"] = 4] = "UPLOAD_FAILED";
    __StatusValues[__StatusValues["BUSY"] = 5] = "BUSY";
})(__StatusValues || (__StatusValues = {}));
(function (Status) {
    Status.codec = () => {
        return enumeration(__StatusValues);
    };
})(Status || (Status = {}));
export var Kind;
(function (Kind) {
    Kind["KIND_UNSPECIFIED"] = "KIND_UNSPECIFIED";
    Kind["MEMFILE"] = "MEMFILE";
    Kind["ROOTFS"] = "ROOTFS";
})(Kind || (Kind = {}));
var __KindValues;
(function (__KindValues) {
    __KindValues[__KindValues["KIND_UNSPECIFIED"] = 0] = "KIND_UNSPECIFIED";
    __KindValues[__KindValues["MEMFILE"] = 1] = "MEMFILE";
    __KindValues[__KindValues["ROOTFS"] = 2] = "ROOTFS";
})(__KindValues || (__KindValues = {}));
(function (Kind) {
    Kind.codec = () => {
        return enumeration(__KindValues);
    };
})(Kind || (Kind = {}));
export var GetHeader;
(function (GetHeader) {
    let _codec;
    GetHeader.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
                    w.uint32(10);
                    w.bytes(obj.buildId);
                }
                if (obj.kind != null && __KindValues[obj.kind] !== 0) {
                    w.uint32(16);
                    Kind.codec().encode(obj.kind, w);
                }
                if (obj.firstReadAt != null) {
                    w.uint32(24);
                    w.uint64Number(obj.firstReadAt);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    buildId: uint8ArrayAlloc(0),
                    kind: Kind.KIND_UNSPECIFIED
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.buildId = reader.bytes();
                            break;
                        }
                        case 2: {
                            obj.kind = Kind.codec().decode(reader);
                            break;
                        }
                        case 3: {
                            obj.firstReadAt = reader.uint64Number();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.buildId`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.kind`,
                                value: Kind.codec().decode(reader)
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.firstReadAt`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetHeader.codec());
    }
    GetHeader.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetHeader.codec(), opts);
    }
    GetHeader.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetHeader.codec(), opts);
    }
    GetHeader.stream = stream;
})(GetHeader || (GetHeader = {}));
export var HeaderResponse;
(function (HeaderResponse) {
    let _codec;
    HeaderResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.status != null && __StatusValues[obj.status] !== 0) {
                    w.uint32(8);
                    Status.codec().encode(obj.status, w);
                }
                if ((obj.header != null && obj.header.byteLength > 0)) {
                    w.uint32(18);
                    w.bytes(obj.header);
                }
                if ((obj.pending != null && obj.pending !== false)) {
                    w.uint32(24);
                    w.bool(obj.pending);
                }
                if ((obj.frameStartC != null && obj.frameStartC !== 0)) {
                    w.uint32(32);
                    w.uint64Number(obj.frameStartC);
                }
                if ((obj.frameSizeC != null && obj.frameSizeC !== 0)) {
                    w.uint32(40);
                    w.uint32(obj.frameSizeC);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    status: Status.STATUS_UNSPECIFIED,
                    header: uint8ArrayAlloc(0),
                    pending: false,
                    frameStartC: 0,
                    frameSizeC: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.status = Status.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.header = reader.bytes();
                            break;
                        }
                        case 3: {
                            obj.pending = reader.bool();
                            break;
                        }
                        case 4: {
                            obj.frameStartC = reader.uint64Number();
                            break;
                        }
                        case 5: {
                            obj.frameSizeC = reader.uint32();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.status`,
                                value: Status.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.header`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.pending`,
                                value: reader.bool()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.frameStartC`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.frameSizeC`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, HeaderResponse.codec());
    }
    HeaderResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, HeaderResponse.codec(), opts);
    }
    HeaderResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, HeaderResponse.codec(), opts);
    }
    HeaderResponse.stream = stream;
})(HeaderResponse || (HeaderResponse = {}));
export var FrameCodec;
(function (FrameCodec) {
    FrameCodec["CODEC_UNSPECIFIED"] = "CODEC_UNSPECIFIED";
    FrameCodec["CODEC_NONE"] = "CODEC_NONE";
    FrameCodec["CODEC_ZSTD"] = "CODEC_ZSTD";
    FrameCodec["CODEC_LZ4"] = "CODEC_LZ4";
})(FrameCodec || (FrameCodec = {}));
var __FrameCodecValues;
(function (__FrameCodecValues) {
    __FrameCodecValues[__FrameCodecValues["CODEC_UNSPECIFIED"] = 0] = "CODEC_UNSPECIFIED";
    __FrameCodecValues[__FrameCodecValues["CODEC_NONE"] = 1] = "CODEC_NONE";
    __FrameCodecValues[__FrameCodecValues["CODEC_ZSTD"] = 2] = "CODEC_ZSTD";
    __FrameCodecValues[__FrameCodecValues["CODEC_LZ4"] = 3] = "CODEC_LZ4";
})(__FrameCodecValues || (__FrameCodecValues = {}));
(function (FrameCodec) {
    FrameCodec.codec = () => {
        return enumeration(__FrameCodecValues);
    };
})(FrameCodec || (FrameCodec = {}));
export var FrameRange;
(function (FrameRange) {
    let _codec;
    FrameRange.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.startC != null && obj.startC !== 0)) {
                    w.uint32(8);
                    w.uint64Number(obj.startC);
                }
                if ((obj.sizeC != null && obj.sizeC !== 0)) {
                    w.uint32(16);
                    w.uint32(obj.sizeC);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    startC: 0,
                    sizeC: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.startC = reader.uint64Number();
                            break;
                        }
                        case 2: {
                            obj.sizeC = reader.uint32();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.startC`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.sizeC`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, FrameRange.codec());
    }
    FrameRange.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, FrameRange.codec(), opts);
    }
    FrameRange.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, FrameRange.codec(), opts);
    }
    FrameRange.stream = stream;
})(FrameRange || (FrameRange = {}));
export var GetFrames;
(function (GetFrames) {
    let _codec;
    GetFrames.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
                    w.uint32(10);
                    w.bytes(obj.buildId);
                }
                if (obj.kind != null && __KindValues[obj.kind] !== 0) {
                    w.uint32(16);
                    Kind.codec().encode(obj.kind, w);
                }
                if (obj.frames != null && obj.frames.length > 0) {
                    for (const value of obj.frames) {
                        w.uint32(26);
                        FrameRange.codec().encode(value, w);
                    }
                }
                if (obj.codec != null && __FrameCodecValues[obj.codec] !== 0) {
                    w.uint32(32);
                    FrameCodec.codec().encode(obj.codec, w);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    buildId: uint8ArrayAlloc(0),
                    kind: Kind.KIND_UNSPECIFIED,
                    frames: [],
                    codec: FrameCodec.CODEC_UNSPECIFIED
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.buildId = reader.bytes();
                            break;
                        }
                        case 2: {
                            obj.kind = Kind.codec().decode(reader);
                            break;
                        }
                        case 3: {
                            if (opts.limits?.frames != null && obj.frames.length === opts.limits.frames) {
                                throw new MaxLengthError('Decode error - repeated field "frames" had too many elements');
                            }
                            obj.frames.push(FrameRange.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.frames$
                            }));
                            break;
                        }
                        case 4: {
                            obj.codec = FrameCodec.codec().decode(reader);
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    frames: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.buildId`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.kind`,
                                value: Kind.codec().decode(reader)
                            };
                            break;
                        }
                        case 3: {
                            if (opts.limits?.frames != null && obj.frames === opts.limits.frames) {
                                throw new MaxLengthError('Streaming decode error - repeated field "frames" had too many elements');
                            }
                            for (const evt of FrameRange.codec().stream(reader, reader.uint32(), `${prefix}.frames[]`, {
                                limits: opts.limits?.frames$
                            })) {
                                yield {
                                    ...evt,
                                    index: obj.frames
                                };
                            }
                            obj.frames++;
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.codec`,
                                value: FrameCodec.codec().decode(reader)
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetFrames.codec());
    }
    GetFrames.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetFrames.codec(), opts);
    }
    GetFrames.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetFrames.codec(), opts);
    }
    GetFrames.stream = stream;
})(GetFrames || (GetFrames = {}));
export var FramesResponse;
(function (FramesResponse) {
    let _codec;
    FramesResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.status != null && __StatusValues[obj.status] !== 0) {
                    w.uint32(8);
                    Status.codec().encode(obj.status, w);
                }
                if (obj.lengths != null && obj.lengths.length > 0) {
                    for (const value of obj.lengths) {
                        w.uint32(16);
                        w.uint32(value);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    status: Status.STATUS_UNSPECIFIED,
                    lengths: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.status = Status.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            if (opts.limits?.lengths != null && obj.lengths.length === opts.limits.lengths) {
                                throw new MaxLengthError('Decode error - repeated field "lengths" had too many elements');
                            }
                            obj.lengths.push(reader.uint32());
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    lengths: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.status`,
                                value: Status.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            if (opts.limits?.lengths != null && obj.lengths === opts.limits.lengths) {
                                throw new MaxLengthError('Streaming decode error - repeated field "lengths" had too many elements');
                            }
                            yield {
                                field: `${prefix}.lengths[]`,
                                index: obj.lengths,
                                value: reader.uint32()
                            };
                            obj.lengths++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, FramesResponse.codec());
    }
    FramesResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, FramesResponse.codec(), opts);
    }
    FramesResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, FramesResponse.codec(), opts);
    }
    FramesResponse.stream = stream;
})(FramesResponse || (FramesResponse = {}));
export var GetBlob;
(function (GetBlob) {
    let _codec;
    GetBlob.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
                    w.uint32(10);
                    w.bytes(obj.buildId);
                }
                if ((obj.name != null && obj.name !== '')) {
                    w.uint32(18);
                    w.string(obj.name);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    buildId: uint8ArrayAlloc(0),
                    name: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.buildId = reader.bytes();
                            break;
                        }
                        case 2: {
                            obj.name = reader.string();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.buildId`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.name`,
                                value: reader.string()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, GetBlob.codec());
    }
    GetBlob.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, GetBlob.codec(), opts);
    }
    GetBlob.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, GetBlob.codec(), opts);
    }
    GetBlob.stream = stream;
})(GetBlob || (GetBlob = {}));
export var BlobResponse;
(function (BlobResponse) {
    let _codec;
    BlobResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.status != null && __StatusValues[obj.status] !== 0) {
                    w.uint32(8);
                    Status.codec().encode(obj.status, w);
                }
                if ((obj.length != null && obj.length !== 0)) {
                    w.uint32(16);
                    w.uint64Number(obj.length);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    status: Status.STATUS_UNSPECIFIED,
                    length: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.status = Status.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.length = reader.uint64Number();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.status`,
                                value: Status.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.length`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, BlobResponse.codec());
    }
    BlobResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, BlobResponse.codec(), opts);
    }
    BlobResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, BlobResponse.codec(), opts);
    }
    BlobResponse.stream = stream;
})(BlobResponse || (BlobResponse = {}));
export var BuildState;
(function (BuildState) {
    BuildState["BUILD_STATE_UNSPECIFIED"] = "BUILD_STATE_UNSPECIFIED";
    BuildState["PENDING"] = "PENDING";
    BuildState["UPLOADED"] = "UPLOADED";
    BuildState["CACHED"] = "CACHED";
    BuildState["FAILED"] = "FAILED";
})(BuildState || (BuildState = {}));
var __BuildStateValues;
(function (__BuildStateValues) {
    __BuildStateValues[__BuildStateValues["BUILD_STATE_UNSPECIFIED"] = 0] = "BUILD_STATE_UNSPECIFIED";
    __BuildStateValues[__BuildStateValues["PENDING"] = 1] = "PENDING";
    __BuildStateValues[__BuildStateValues["UPLOADED"] = 2] = "UPLOADED";
    __BuildStateValues[__BuildStateValues["CACHED"] = 3] = "CACHED";
    __BuildStateValues[__BuildStateValues["FAILED"] = 4] = "FAILED";
})(__BuildStateValues || (__BuildStateValues = {}));
(function (BuildState) {
    BuildState.codec = () => {
        return enumeration(__BuildStateValues);
    };
})(BuildState || (BuildState = {}));
export var BuildAnnouncement;
(function (BuildAnnouncement) {
    let _codec;
    BuildAnnouncement.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
                    w.uint32(10);
                    w.bytes(obj.buildId);
                }
                if (obj.state != null && __BuildStateValues[obj.state] !== 0) {
                    w.uint32(16);
                    BuildState.codec().encode(obj.state, w);
                }
                if ((obj.memfileSize != null && obj.memfileSize !== 0)) {
                    w.uint32(24);
                    w.uint64Number(obj.memfileSize);
                }
                if ((obj.rootfsSize != null && obj.rootfsSize !== 0)) {
                    w.uint32(32);
                    w.uint64Number(obj.rootfsSize);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    buildId: uint8ArrayAlloc(0),
                    state: BuildState.BUILD_STATE_UNSPECIFIED,
                    memfileSize: 0,
                    rootfsSize: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.buildId = reader.bytes();
                            break;
                        }
                        case 2: {
                            obj.state = BuildState.codec().decode(reader);
                            break;
                        }
                        case 3: {
                            obj.memfileSize = reader.uint64Number();
                            break;
                        }
                        case 4: {
                            obj.rootfsSize = reader.uint64Number();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.buildId`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.state`,
                                value: BuildState.codec().decode(reader)
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.memfileSize`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.rootfsSize`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, BuildAnnouncement.codec());
    }
    BuildAnnouncement.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, BuildAnnouncement.codec(), opts);
    }
    BuildAnnouncement.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, BuildAnnouncement.codec(), opts);
    }
    BuildAnnouncement.stream = stream;
})(BuildAnnouncement || (BuildAnnouncement = {}));
export var Announce;
(function (Announce) {
    let _codec;
    Announce.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.builds != null && obj.builds.length > 0) {
                    for (const value of obj.builds) {
                        w.uint32(10);
                        BuildAnnouncement.codec().encode(value, w);
                    }
                }
                if ((obj.ttlMs != null && obj.ttlMs !== 0)) {
                    w.uint32(16);
                    w.uint32(obj.ttlMs);
                }
                if ((obj.seq != null && obj.seq !== 0)) {
                    w.uint32(24);
                    w.uint64Number(obj.seq);
                }
                if ((obj.incarnation != null && obj.incarnation !== 0)) {
                    w.uint32(32);
                    w.uint64Number(obj.incarnation);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    builds: [],
                    ttlMs: 0,
                    seq: 0,
                    incarnation: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.builds != null && obj.builds.length === opts.limits.builds) {
                                throw new MaxLengthError('Decode error - repeated field "builds" had too many elements');
                            }
                            obj.builds.push(BuildAnnouncement.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.builds$
                            }));
                            break;
                        }
                        case 2: {
                            obj.ttlMs = reader.uint32();
                            break;
                        }
                        case 3: {
                            obj.seq = reader.uint64Number();
                            break;
                        }
                        case 4: {
                            obj.incarnation = reader.uint64Number();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    builds: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.builds != null && obj.builds === opts.limits.builds) {
                                throw new MaxLengthError('Streaming decode error - repeated field "builds" had too many elements');
                            }
                            for (const evt of BuildAnnouncement.codec().stream(reader, reader.uint32(), `${prefix}.builds[]`, {
                                limits: opts.limits?.builds$
                            })) {
                                yield {
                                    ...evt,
                                    index: obj.builds
                                };
                            }
                            obj.builds++;
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.ttlMs`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.seq`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.incarnation`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Announce.codec());
    }
    Announce.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Announce.codec(), opts);
    }
    Announce.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Announce.codec(), opts);
    }
    Announce.stream = stream;
})(Announce || (Announce = {}));
export var Member;
(function (Member) {
    let _codec;
    Member.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.peerId != null && obj.peerId !== '')) {
                    w.uint32(10);
                    w.string(obj.peerId);
                }
                if (obj.addrs != null && obj.addrs.length > 0) {
                    for (const value of obj.addrs) {
                        w.uint32(18);
                        w.string(value);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    peerId: '',
                    addrs: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.peerId = reader.string();
                            break;
                        }
                        case 2: {
                            if (opts.limits?.addrs != null && obj.addrs.length === opts.limits.addrs) {
                                throw new MaxLengthError('Decode error - repeated field "addrs" had too many elements');
                            }
                            obj.addrs.push(reader.string());
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    addrs: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.peerId`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 2: {
                            if (opts.limits?.addrs != null && obj.addrs === opts.limits.addrs) {
                                throw new MaxLengthError('Streaming decode error - repeated field "addrs" had too many elements');
                            }
                            yield {
                                field: `${prefix}.addrs[]`,
                                index: obj.addrs,
                                value: reader.string()
                            };
                            obj.addrs++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Member.codec());
    }
    Member.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Member.codec(), opts);
    }
    Member.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Member.codec(), opts);
    }
    Member.stream = stream;
})(Member || (Member = {}));
export var MemberList;
(function (MemberList) {
    let _codec;
    MemberList.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.members != null && obj.members.length > 0) {
                    for (const value of obj.members) {
                        w.uint32(10);
                        Member.codec().encode(value, w);
                    }
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    members: []
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.members != null && obj.members.length === opts.limits.members) {
                                throw new MaxLengthError('Decode error - repeated field "members" had too many elements');
                            }
                            obj.members.push(Member.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.members$
                            }));
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const obj = {
                    members: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.members != null && obj.members === opts.limits.members) {
                                throw new MaxLengthError('Streaming decode error - repeated field "members" had too many elements');
                            }
                            for (const evt of Member.codec().stream(reader, reader.uint32(), `${prefix}.members[]`, {
                                limits: opts.limits?.members$
                            })) {
                                yield {
                                    ...evt,
                                    index: obj.members
                                };
                            }
                            obj.members++;
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, MemberList.codec());
    }
    MemberList.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, MemberList.codec(), opts);
    }
    MemberList.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, MemberList.codec(), opts);
    }
    MemberList.stream = stream;
})(MemberList || (MemberList = {}));
