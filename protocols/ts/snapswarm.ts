import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export enum Status {
  STATUS_UNSPECIFIED = 'STATUS_UNSPECIFIED',
  OK = 'OK',
  NOT_AVAILABLE = 'NOT_AVAILABLE',
  USE_STORAGE = 'USE_STORAGE',
  UPLOAD_FAILED = 'UPLOAD_FAILED',
  BUSY = 'BUSY'
}

enum __StatusValues {
  STATUS_UNSPECIFIED = 0,
  OK = 1,
  NOT_AVAILABLE = 2,
  USE_STORAGE = 3,
  UPLOAD_FAILED = 4,
  BUSY = 5
}

export namespace Status {
  export const codec = (): Codec<Status> => {
    return enumeration<Status>(__StatusValues)
  }
}

export enum Kind {
  KIND_UNSPECIFIED = 'KIND_UNSPECIFIED',
  MEMFILE = 'MEMFILE',
  ROOTFS = 'ROOTFS'
}

enum __KindValues {
  KIND_UNSPECIFIED = 0,
  MEMFILE = 1,
  ROOTFS = 2
}

export namespace Kind {
  export const codec = (): Codec<Kind> => {
    return enumeration<Kind>(__KindValues)
  }
}

export interface GetHeader {
  buildId: Uint8Array<ArrayBuffer>
  kind: Kind
}

export namespace GetHeader {
  let _codec: Codec<GetHeader>

  export const codec = (): Codec<GetHeader> => {
    if (_codec == null) {
      _codec = message<GetHeader>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
          w.uint32(10)
          w.bytes(obj.buildId)
        }

        if (obj.kind != null && __KindValues[obj.kind] !== 0) {
          w.uint32(16)
          Kind.codec().encode(obj.kind, w)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          buildId: uint8ArrayAlloc(0),
          kind: Kind.KIND_UNSPECIFIED
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.buildId = reader.bytes()
              break
            }
            case 2: {
              obj.kind = Kind.codec().decode(reader)
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.buildId`,
                value: reader.bytes()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.kind`,
                value: Kind.codec().decode(reader)
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface GetHeaderBuildIdFieldEvent {
    field: '$.buildId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface GetHeaderKindFieldEvent {
    field: '$.kind'
    value: Kind
  }

  export function encode (obj: Partial<GetHeader>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, GetHeader.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetHeader>): GetHeader {
    return decodeMessage(buf, GetHeader.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetHeader>): Generator<GetHeaderBuildIdFieldEvent | GetHeaderKindFieldEvent> {
    return streamMessage(buf, GetHeader.codec(), opts)
  }
}

export interface HeaderResponse {
  status: Status
  header: Uint8Array<ArrayBuffer>
  pending: boolean
}

export namespace HeaderResponse {
  let _codec: Codec<HeaderResponse>

  export const codec = (): Codec<HeaderResponse> => {
    if (_codec == null) {
      _codec = message<HeaderResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.status != null && __StatusValues[obj.status] !== 0) {
          w.uint32(8)
          Status.codec().encode(obj.status, w)
        }

        if ((obj.header != null && obj.header.byteLength > 0)) {
          w.uint32(18)
          w.bytes(obj.header)
        }

        if ((obj.pending != null && obj.pending !== false)) {
          w.uint32(24)
          w.bool(obj.pending)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          status: Status.STATUS_UNSPECIFIED,
          header: uint8ArrayAlloc(0),
          pending: false
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.status = Status.codec().decode(reader)
              break
            }
            case 2: {
              obj.header = reader.bytes()
              break
            }
            case 3: {
              obj.pending = reader.bool()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.status`,
                value: Status.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.header`,
                value: reader.bytes()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.pending`,
                value: reader.bool()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface HeaderResponseStatusFieldEvent {
    field: '$.status'
    value: Status
  }

  export interface HeaderResponseHeaderFieldEvent {
    field: '$.header'
    value: Uint8Array<ArrayBuffer>
  }

  export interface HeaderResponsePendingFieldEvent {
    field: '$.pending'
    value: boolean
  }

  export function encode (obj: Partial<HeaderResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, HeaderResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<HeaderResponse>): HeaderResponse {
    return decodeMessage(buf, HeaderResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<HeaderResponse>): Generator<HeaderResponseStatusFieldEvent | HeaderResponseHeaderFieldEvent | HeaderResponsePendingFieldEvent> {
    return streamMessage(buf, HeaderResponse.codec(), opts)
  }
}

export enum FrameCodec {
  CODEC_UNSPECIFIED = 'CODEC_UNSPECIFIED',
  CODEC_NONE = 'CODEC_NONE',
  CODEC_ZSTD = 'CODEC_ZSTD',
  CODEC_LZ4 = 'CODEC_LZ4'
}

enum __FrameCodecValues {
  CODEC_UNSPECIFIED = 0,
  CODEC_NONE = 1,
  CODEC_ZSTD = 2,
  CODEC_LZ4 = 3
}

export namespace FrameCodec {
  export const codec = (): Codec<FrameCodec> => {
    return enumeration<FrameCodec>(__FrameCodecValues)
  }
}

export interface FrameRange {
  startC: number
  sizeC: number
}

export namespace FrameRange {
  let _codec: Codec<FrameRange>

  export const codec = (): Codec<FrameRange> => {
    if (_codec == null) {
      _codec = message<FrameRange>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.startC != null && obj.startC !== 0)) {
          w.uint32(8)
          w.uint64Number(obj.startC)
        }

        if ((obj.sizeC != null && obj.sizeC !== 0)) {
          w.uint32(16)
          w.uint32(obj.sizeC)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          startC: 0,
          sizeC: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.startC = reader.uint64Number()
              break
            }
            case 2: {
              obj.sizeC = reader.uint32()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.startC`,
                value: reader.uint64Number()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.sizeC`,
                value: reader.uint32()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface FrameRangeStartCFieldEvent {
    field: '$.startC'
    value: number
  }

  export interface FrameRangeSizeCFieldEvent {
    field: '$.sizeC'
    value: number
  }

  export function encode (obj: Partial<FrameRange>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, FrameRange.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FrameRange>): FrameRange {
    return decodeMessage(buf, FrameRange.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FrameRange>): Generator<FrameRangeStartCFieldEvent | FrameRangeSizeCFieldEvent> {
    return streamMessage(buf, FrameRange.codec(), opts)
  }
}

export interface GetFrames {
  buildId: Uint8Array<ArrayBuffer>
  kind: Kind
  frames: FrameRange[]
  codec: FrameCodec
}

export namespace GetFrames {
  let _codec: Codec<GetFrames>

  export const codec = (): Codec<GetFrames> => {
    if (_codec == null) {
      _codec = message<GetFrames>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
          w.uint32(10)
          w.bytes(obj.buildId)
        }

        if (obj.kind != null && __KindValues[obj.kind] !== 0) {
          w.uint32(16)
          Kind.codec().encode(obj.kind, w)
        }

        if (obj.frames != null && obj.frames.length > 0) {
          for (const value of obj.frames) {
            w.uint32(26)
            FrameRange.codec().encode(value, w)
          }
        }

        if (obj.codec != null && __FrameCodecValues[obj.codec] !== 0) {
          w.uint32(32)
          FrameCodec.codec().encode(obj.codec, w)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          buildId: uint8ArrayAlloc(0),
          kind: Kind.KIND_UNSPECIFIED,
          frames: [],
          codec: FrameCodec.CODEC_UNSPECIFIED
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.buildId = reader.bytes()
              break
            }
            case 2: {
              obj.kind = Kind.codec().decode(reader)
              break
            }
            case 3: {
              if (opts.limits?.frames != null && obj.frames.length === opts.limits.frames) {
                throw new MaxLengthError('Decode error - repeated field "frames" had too many elements')
              }

              obj.frames.push(FrameRange.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.frames$
              }))
              break
            }
            case 4: {
              obj.codec = FrameCodec.codec().decode(reader)
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          frames: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.buildId`,
                value: reader.bytes()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.kind`,
                value: Kind.codec().decode(reader)
              }
              break
            }
            case 3: {
              if (opts.limits?.frames != null && obj.frames === opts.limits.frames) {
                throw new MaxLengthError('Streaming decode error - repeated field "frames" had too many elements')
              }

              for (const evt of FrameRange.codec().stream(reader, reader.uint32(), `${prefix}.frames[]`, {
                limits: opts.limits?.frames$
              })) {
                yield {
                  ...evt,
                  index: obj.frames
                }
              }

              obj.frames++

              break
            }
            case 4: {
              yield {
                field: `${prefix}.codec`,
                value: FrameCodec.codec().decode(reader)
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface GetFramesBuildIdFieldEvent {
    field: '$.buildId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface GetFramesKindFieldEvent {
    field: '$.kind'
    value: Kind
  }

  export interface GetFramesFramesStartCFieldEvent {
    field: '$.frames[].startC'
    value: number
    index: number
  }

  export interface GetFramesFramesSizeCFieldEvent {
    field: '$.frames[].sizeC'
    value: number
    index: number
  }

  export interface GetFramesCodecFieldEvent {
    field: '$.codec'
    value: FrameCodec
  }

  export function encode (obj: Partial<GetFrames>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, GetFrames.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetFrames>): GetFrames {
    return decodeMessage(buf, GetFrames.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetFrames>): Generator<GetFramesBuildIdFieldEvent | GetFramesKindFieldEvent | GetFramesFramesStartCFieldEvent | GetFramesFramesSizeCFieldEvent | GetFramesCodecFieldEvent> {
    return streamMessage(buf, GetFrames.codec(), opts)
  }
}

export interface FramesResponse {
  status: Status
  lengths: number[]
}

export namespace FramesResponse {
  let _codec: Codec<FramesResponse>

  export const codec = (): Codec<FramesResponse> => {
    if (_codec == null) {
      _codec = message<FramesResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.status != null && __StatusValues[obj.status] !== 0) {
          w.uint32(8)
          Status.codec().encode(obj.status, w)
        }

        if (obj.lengths != null && obj.lengths.length > 0) {
          for (const value of obj.lengths) {
            w.uint32(16)
            w.uint32(value)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          status: Status.STATUS_UNSPECIFIED,
          lengths: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.status = Status.codec().decode(reader)
              break
            }
            case 2: {
              if (opts.limits?.lengths != null && obj.lengths.length === opts.limits.lengths) {
                throw new MaxLengthError('Decode error - repeated field "lengths" had too many elements')
              }

              obj.lengths.push(reader.uint32())
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          lengths: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.status`,
                value: Status.codec().decode(reader)
              }
              break
            }
            case 2: {
              if (opts.limits?.lengths != null && obj.lengths === opts.limits.lengths) {
                throw new MaxLengthError('Streaming decode error - repeated field "lengths" had too many elements')
              }

              yield {
                field: `${prefix}.lengths[]`,
                index: obj.lengths,
                value: reader.uint32()
              }

              obj.lengths++

              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface FramesResponseStatusFieldEvent {
    field: '$.status'
    value: Status
  }

  export interface FramesResponseLengthsFieldEvent {
    field: '$.lengths[]'
    index: number
    value: number
  }

  export function encode (obj: Partial<FramesResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, FramesResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FramesResponse>): FramesResponse {
    return decodeMessage(buf, FramesResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FramesResponse>): Generator<FramesResponseStatusFieldEvent | FramesResponseLengthsFieldEvent> {
    return streamMessage(buf, FramesResponse.codec(), opts)
  }
}

export interface GetBlob {
  buildId: Uint8Array<ArrayBuffer>
  name: string
}

export namespace GetBlob {
  let _codec: Codec<GetBlob>

  export const codec = (): Codec<GetBlob> => {
    if (_codec == null) {
      _codec = message<GetBlob>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
          w.uint32(10)
          w.bytes(obj.buildId)
        }

        if ((obj.name != null && obj.name !== '')) {
          w.uint32(18)
          w.string(obj.name)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          buildId: uint8ArrayAlloc(0),
          name: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.buildId = reader.bytes()
              break
            }
            case 2: {
              obj.name = reader.string()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.buildId`,
                value: reader.bytes()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.name`,
                value: reader.string()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface GetBlobBuildIdFieldEvent {
    field: '$.buildId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface GetBlobNameFieldEvent {
    field: '$.name'
    value: string
  }

  export function encode (obj: Partial<GetBlob>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, GetBlob.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetBlob>): GetBlob {
    return decodeMessage(buf, GetBlob.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetBlob>): Generator<GetBlobBuildIdFieldEvent | GetBlobNameFieldEvent> {
    return streamMessage(buf, GetBlob.codec(), opts)
  }
}

export interface BlobResponse {
  status: Status
  length: number
}

export namespace BlobResponse {
  let _codec: Codec<BlobResponse>

  export const codec = (): Codec<BlobResponse> => {
    if (_codec == null) {
      _codec = message<BlobResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.status != null && __StatusValues[obj.status] !== 0) {
          w.uint32(8)
          Status.codec().encode(obj.status, w)
        }

        if ((obj.length != null && obj.length !== 0)) {
          w.uint32(16)
          w.uint64Number(obj.length)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          status: Status.STATUS_UNSPECIFIED,
          length: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.status = Status.codec().decode(reader)
              break
            }
            case 2: {
              obj.length = reader.uint64Number()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.status`,
                value: Status.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.length`,
                value: reader.uint64Number()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface BlobResponseStatusFieldEvent {
    field: '$.status'
    value: Status
  }

  export interface BlobResponseLengthFieldEvent {
    field: '$.length'
    value: number
  }

  export function encode (obj: Partial<BlobResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, BlobResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlobResponse>): BlobResponse {
    return decodeMessage(buf, BlobResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlobResponse>): Generator<BlobResponseStatusFieldEvent | BlobResponseLengthFieldEvent> {
    return streamMessage(buf, BlobResponse.codec(), opts)
  }
}

export enum BuildState {
  BUILD_STATE_UNSPECIFIED = 'BUILD_STATE_UNSPECIFIED',
  PENDING = 'PENDING',
  UPLOADED = 'UPLOADED',
  CACHED = 'CACHED',
  FAILED = 'FAILED'
}

enum __BuildStateValues {
  BUILD_STATE_UNSPECIFIED = 0,
  PENDING = 1,
  UPLOADED = 2,
  CACHED = 3,
  FAILED = 4
}

export namespace BuildState {
  export const codec = (): Codec<BuildState> => {
    return enumeration<BuildState>(__BuildStateValues)
  }
}

export interface BuildAnnouncement {
  buildId: Uint8Array<ArrayBuffer>
  state: BuildState
  memfileSize: number
  rootfsSize: number
}

export namespace BuildAnnouncement {
  let _codec: Codec<BuildAnnouncement>

  export const codec = (): Codec<BuildAnnouncement> => {
    if (_codec == null) {
      _codec = message<BuildAnnouncement>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.buildId != null && obj.buildId.byteLength > 0)) {
          w.uint32(10)
          w.bytes(obj.buildId)
        }

        if (obj.state != null && __BuildStateValues[obj.state] !== 0) {
          w.uint32(16)
          BuildState.codec().encode(obj.state, w)
        }

        if ((obj.memfileSize != null && obj.memfileSize !== 0)) {
          w.uint32(24)
          w.uint64Number(obj.memfileSize)
        }

        if ((obj.rootfsSize != null && obj.rootfsSize !== 0)) {
          w.uint32(32)
          w.uint64Number(obj.rootfsSize)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          buildId: uint8ArrayAlloc(0),
          state: BuildState.BUILD_STATE_UNSPECIFIED,
          memfileSize: 0,
          rootfsSize: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.buildId = reader.bytes()
              break
            }
            case 2: {
              obj.state = BuildState.codec().decode(reader)
              break
            }
            case 3: {
              obj.memfileSize = reader.uint64Number()
              break
            }
            case 4: {
              obj.rootfsSize = reader.uint64Number()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.buildId`,
                value: reader.bytes()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.state`,
                value: BuildState.codec().decode(reader)
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.memfileSize`,
                value: reader.uint64Number()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.rootfsSize`,
                value: reader.uint64Number()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface BuildAnnouncementBuildIdFieldEvent {
    field: '$.buildId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface BuildAnnouncementStateFieldEvent {
    field: '$.state'
    value: BuildState
  }

  export interface BuildAnnouncementMemfileSizeFieldEvent {
    field: '$.memfileSize'
    value: number
  }

  export interface BuildAnnouncementRootfsSizeFieldEvent {
    field: '$.rootfsSize'
    value: number
  }

  export function encode (obj: Partial<BuildAnnouncement>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, BuildAnnouncement.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BuildAnnouncement>): BuildAnnouncement {
    return decodeMessage(buf, BuildAnnouncement.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BuildAnnouncement>): Generator<BuildAnnouncementBuildIdFieldEvent | BuildAnnouncementStateFieldEvent | BuildAnnouncementMemfileSizeFieldEvent | BuildAnnouncementRootfsSizeFieldEvent> {
    return streamMessage(buf, BuildAnnouncement.codec(), opts)
  }
}

export interface Announce {
  builds: BuildAnnouncement[]
  ttlMs: number
  seq: number
}

export namespace Announce {
  let _codec: Codec<Announce>

  export const codec = (): Codec<Announce> => {
    if (_codec == null) {
      _codec = message<Announce>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.builds != null && obj.builds.length > 0) {
          for (const value of obj.builds) {
            w.uint32(10)
            BuildAnnouncement.codec().encode(value, w)
          }
        }

        if ((obj.ttlMs != null && obj.ttlMs !== 0)) {
          w.uint32(16)
          w.uint32(obj.ttlMs)
        }

        if ((obj.seq != null && obj.seq !== 0)) {
          w.uint32(24)
          w.uint64Number(obj.seq)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          builds: [],
          ttlMs: 0,
          seq: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.builds != null && obj.builds.length === opts.limits.builds) {
                throw new MaxLengthError('Decode error - repeated field "builds" had too many elements')
              }

              obj.builds.push(BuildAnnouncement.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.builds$
              }))
              break
            }
            case 2: {
              obj.ttlMs = reader.uint32()
              break
            }
            case 3: {
              obj.seq = reader.uint64Number()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          builds: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.builds != null && obj.builds === opts.limits.builds) {
                throw new MaxLengthError('Streaming decode error - repeated field "builds" had too many elements')
              }

              for (const evt of BuildAnnouncement.codec().stream(reader, reader.uint32(), `${prefix}.builds[]`, {
                limits: opts.limits?.builds$
              })) {
                yield {
                  ...evt,
                  index: obj.builds
                }
              }

              obj.builds++

              break
            }
            case 2: {
              yield {
                field: `${prefix}.ttlMs`,
                value: reader.uint32()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.seq`,
                value: reader.uint64Number()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface AnnounceBuildsBuildIdFieldEvent {
    field: '$.builds[].buildId'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export interface AnnounceBuildsStateFieldEvent {
    field: '$.builds[].state'
    value: BuildState
    index: number
  }

  export interface AnnounceBuildsMemfileSizeFieldEvent {
    field: '$.builds[].memfileSize'
    value: number
    index: number
  }

  export interface AnnounceBuildsRootfsSizeFieldEvent {
    field: '$.builds[].rootfsSize'
    value: number
    index: number
  }

  export interface AnnounceTtlMsFieldEvent {
    field: '$.ttlMs'
    value: number
  }

  export interface AnnounceSeqFieldEvent {
    field: '$.seq'
    value: number
  }

  export function encode (obj: Partial<Announce>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Announce.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Announce>): Announce {
    return decodeMessage(buf, Announce.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Announce>): Generator<AnnounceBuildsBuildIdFieldEvent | AnnounceBuildsStateFieldEvent | AnnounceBuildsMemfileSizeFieldEvent | AnnounceBuildsRootfsSizeFieldEvent | AnnounceTtlMsFieldEvent | AnnounceSeqFieldEvent> {
    return streamMessage(buf, Announce.codec(), opts)
  }
}
