/**
 * A create-only write that the client retried after its first attempt had already landed (the
 * answer was lost: a reset, a timeout) comes back "exists" although the object there is the one it
 * wrote. Such a write is a success when the stored object holds exactly these bytes and metadata; any
 * other object under the name is still ObjectExistsError, so nothing stored is ever replaced.
 */
import type { ObjectStat } from './store.ts'

interface Readable {
  stat(name: string, signal?: AbortSignal): Promise<ObjectStat | null>
  get(name: string, opts?: { maxBytes?: number; signal?: AbortSignal }): Promise<Uint8Array>
}

export async function storedIsSame(store: Readable, name: string, data: Uint8Array, metadata: Record<string, string> | undefined, signal?: AbortSignal): Promise<boolean> {
  const st = await store.stat(name, signal)
  if (!st || st.size !== data.byteLength) return false
  for (const [k, v] of Object.entries(metadata ?? {})) if (st.metadata?.[k] !== v) return false
  const stored = await store.get(name, { maxBytes: data.byteLength, signal })
  return Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
}
