import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export declare enum Status {
    STATUS_UNSPECIFIED = "STATUS_UNSPECIFIED",
    OK = "OK",
    NOT_AVAILABLE = "NOT_AVAILABLE",
    USE_STORAGE = "USE_STORAGE",
    UPLOAD_FAILED = "UPLOAD_FAILED",
    BUSY = "BUSY"
}
export declare namespace Status {
    const codec: () => Codec<Status>;
}
export declare enum Kind {
    KIND_UNSPECIFIED = "KIND_UNSPECIFIED",
    MEMFILE = "MEMFILE",
    ROOTFS = "ROOTFS"
}
export declare namespace Kind {
    const codec: () => Codec<Kind>;
}
export interface GetHeader {
    buildId: Uint8Array<ArrayBuffer>;
    kind: Kind;
    firstReadAt?: number;
}
export declare namespace GetHeader {
    const codec: () => Codec<GetHeader>;
    interface GetHeaderBuildIdFieldEvent {
        field: '$.buildId';
        value: Uint8Array<ArrayBuffer>;
    }
    interface GetHeaderKindFieldEvent {
        field: '$.kind';
        value: Kind;
    }
    interface GetHeaderFirstReadAtFieldEvent {
        field: '$.firstReadAt';
        value: number;
    }
    function encode(obj: Partial<GetHeader>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetHeader>): GetHeader;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetHeader>): Generator<GetHeaderBuildIdFieldEvent | GetHeaderKindFieldEvent | GetHeaderFirstReadAtFieldEvent>;
}
export interface HeaderResponse {
    status: Status;
    header: Uint8Array<ArrayBuffer>;
    pending: boolean;
    frameStartC: number;
    frameSizeC: number;
}
export declare namespace HeaderResponse {
    const codec: () => Codec<HeaderResponse>;
    interface HeaderResponseStatusFieldEvent {
        field: '$.status';
        value: Status;
    }
    interface HeaderResponseHeaderFieldEvent {
        field: '$.header';
        value: Uint8Array<ArrayBuffer>;
    }
    interface HeaderResponsePendingFieldEvent {
        field: '$.pending';
        value: boolean;
    }
    interface HeaderResponseFrameStartCFieldEvent {
        field: '$.frameStartC';
        value: number;
    }
    interface HeaderResponseFrameSizeCFieldEvent {
        field: '$.frameSizeC';
        value: number;
    }
    function encode(obj: Partial<HeaderResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<HeaderResponse>): HeaderResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<HeaderResponse>): Generator<HeaderResponseStatusFieldEvent | HeaderResponseHeaderFieldEvent | HeaderResponsePendingFieldEvent | HeaderResponseFrameStartCFieldEvent | HeaderResponseFrameSizeCFieldEvent>;
}
export declare enum FrameCodec {
    CODEC_UNSPECIFIED = "CODEC_UNSPECIFIED",
    CODEC_NONE = "CODEC_NONE",
    CODEC_ZSTD = "CODEC_ZSTD",
    CODEC_LZ4 = "CODEC_LZ4"
}
export declare namespace FrameCodec {
    const codec: () => Codec<FrameCodec>;
}
export interface FrameRange {
    startC: number;
    sizeC: number;
}
export declare namespace FrameRange {
    const codec: () => Codec<FrameRange>;
    interface FrameRangeStartCFieldEvent {
        field: '$.startC';
        value: number;
    }
    interface FrameRangeSizeCFieldEvent {
        field: '$.sizeC';
        value: number;
    }
    function encode(obj: Partial<FrameRange>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FrameRange>): FrameRange;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FrameRange>): Generator<FrameRangeStartCFieldEvent | FrameRangeSizeCFieldEvent>;
}
export interface GetFrames {
    buildId: Uint8Array<ArrayBuffer>;
    kind: Kind;
    frames: FrameRange[];
    codec: FrameCodec;
}
export declare namespace GetFrames {
    const codec: () => Codec<GetFrames>;
    interface GetFramesBuildIdFieldEvent {
        field: '$.buildId';
        value: Uint8Array<ArrayBuffer>;
    }
    interface GetFramesKindFieldEvent {
        field: '$.kind';
        value: Kind;
    }
    interface GetFramesFramesStartCFieldEvent {
        field: '$.frames[].startC';
        value: number;
        index: number;
    }
    interface GetFramesFramesSizeCFieldEvent {
        field: '$.frames[].sizeC';
        value: number;
        index: number;
    }
    interface GetFramesCodecFieldEvent {
        field: '$.codec';
        value: FrameCodec;
    }
    function encode(obj: Partial<GetFrames>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetFrames>): GetFrames;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetFrames>): Generator<GetFramesBuildIdFieldEvent | GetFramesKindFieldEvent | GetFramesFramesStartCFieldEvent | GetFramesFramesSizeCFieldEvent | GetFramesCodecFieldEvent>;
}
export interface FramesResponse {
    status: Status;
    lengths: number[];
}
export declare namespace FramesResponse {
    const codec: () => Codec<FramesResponse>;
    interface FramesResponseStatusFieldEvent {
        field: '$.status';
        value: Status;
    }
    interface FramesResponseLengthsFieldEvent {
        field: '$.lengths[]';
        index: number;
        value: number;
    }
    function encode(obj: Partial<FramesResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FramesResponse>): FramesResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FramesResponse>): Generator<FramesResponseStatusFieldEvent | FramesResponseLengthsFieldEvent>;
}
export interface GetBlob {
    buildId: Uint8Array<ArrayBuffer>;
    name: string;
}
export declare namespace GetBlob {
    const codec: () => Codec<GetBlob>;
    interface GetBlobBuildIdFieldEvent {
        field: '$.buildId';
        value: Uint8Array<ArrayBuffer>;
    }
    interface GetBlobNameFieldEvent {
        field: '$.name';
        value: string;
    }
    function encode(obj: Partial<GetBlob>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetBlob>): GetBlob;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<GetBlob>): Generator<GetBlobBuildIdFieldEvent | GetBlobNameFieldEvent>;
}
export interface BlobResponse {
    status: Status;
    length: number;
}
export declare namespace BlobResponse {
    const codec: () => Codec<BlobResponse>;
    interface BlobResponseStatusFieldEvent {
        field: '$.status';
        value: Status;
    }
    interface BlobResponseLengthFieldEvent {
        field: '$.length';
        value: number;
    }
    function encode(obj: Partial<BlobResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlobResponse>): BlobResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlobResponse>): Generator<BlobResponseStatusFieldEvent | BlobResponseLengthFieldEvent>;
}
export declare enum BuildState {
    BUILD_STATE_UNSPECIFIED = "BUILD_STATE_UNSPECIFIED",
    PENDING = "PENDING",
    UPLOADED = "UPLOADED",
    CACHED = "CACHED",
    FAILED = "FAILED"
}
export declare namespace BuildState {
    const codec: () => Codec<BuildState>;
}
export interface BuildAnnouncement {
    buildId: Uint8Array<ArrayBuffer>;
    state: BuildState;
    memfileSize: number;
    rootfsSize: number;
}
export declare namespace BuildAnnouncement {
    const codec: () => Codec<BuildAnnouncement>;
    interface BuildAnnouncementBuildIdFieldEvent {
        field: '$.buildId';
        value: Uint8Array<ArrayBuffer>;
    }
    interface BuildAnnouncementStateFieldEvent {
        field: '$.state';
        value: BuildState;
    }
    interface BuildAnnouncementMemfileSizeFieldEvent {
        field: '$.memfileSize';
        value: number;
    }
    interface BuildAnnouncementRootfsSizeFieldEvent {
        field: '$.rootfsSize';
        value: number;
    }
    function encode(obj: Partial<BuildAnnouncement>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BuildAnnouncement>): BuildAnnouncement;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BuildAnnouncement>): Generator<BuildAnnouncementBuildIdFieldEvent | BuildAnnouncementStateFieldEvent | BuildAnnouncementMemfileSizeFieldEvent | BuildAnnouncementRootfsSizeFieldEvent>;
}
export interface Announce {
    builds: BuildAnnouncement[];
    ttlMs: number;
    seq: number;
    incarnation: number;
}
export declare namespace Announce {
    const codec: () => Codec<Announce>;
    interface AnnounceBuildsBuildIdFieldEvent {
        field: '$.builds[].buildId';
        value: Uint8Array<ArrayBuffer>;
        index: number;
    }
    interface AnnounceBuildsStateFieldEvent {
        field: '$.builds[].state';
        value: BuildState;
        index: number;
    }
    interface AnnounceBuildsMemfileSizeFieldEvent {
        field: '$.builds[].memfileSize';
        value: number;
        index: number;
    }
    interface AnnounceBuildsRootfsSizeFieldEvent {
        field: '$.builds[].rootfsSize';
        value: number;
        index: number;
    }
    interface AnnounceTtlMsFieldEvent {
        field: '$.ttlMs';
        value: number;
    }
    interface AnnounceSeqFieldEvent {
        field: '$.seq';
        value: number;
    }
    interface AnnounceIncarnationFieldEvent {
        field: '$.incarnation';
        value: number;
    }
    function encode(obj: Partial<Announce>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Announce>): Announce;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Announce>): Generator<AnnounceBuildsBuildIdFieldEvent | AnnounceBuildsStateFieldEvent | AnnounceBuildsMemfileSizeFieldEvent | AnnounceBuildsRootfsSizeFieldEvent | AnnounceTtlMsFieldEvent | AnnounceSeqFieldEvent | AnnounceIncarnationFieldEvent>;
}
export interface Member {
    peerId: string;
    addrs: string[];
}
export declare namespace Member {
    const codec: () => Codec<Member>;
    interface MemberPeerIdFieldEvent {
        field: '$.peerId';
        value: string;
    }
    interface MemberAddrsFieldEvent {
        field: '$.addrs[]';
        index: number;
        value: string;
    }
    function encode(obj: Partial<Member>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Member>): Member;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Member>): Generator<MemberPeerIdFieldEvent | MemberAddrsFieldEvent>;
}
export interface MemberList {
    members: Member[];
}
export declare namespace MemberList {
    const codec: () => Codec<MemberList>;
    interface MemberListMembersPeerIdFieldEvent {
        field: '$.members[].peerId';
        value: string;
        index: number;
    }
    interface MemberListMembersAddrsFieldEvent {
        field: '$.members[].addrs[]';
        index: number;
        value: string;
    }
    function encode(obj: Partial<MemberList>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<MemberList>): MemberList;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<MemberList>): Generator<MemberListMembersPeerIdFieldEvent | MemberListMembersAddrsFieldEvent>;
}
