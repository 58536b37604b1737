import { Storage } from '@google-cloud/storage'
const ep = 'http://127.0.0.1:45123'
const s = new Storage({ apiEndpoint: ep, projectId: 'test' })
const b = s.bucket('b1')
const r = await new Promise((res, rej) => b.file('a/c2').request({ method: 'POST', uri: '/compose', json: { destination: { contentType: 'application/octet-stream', metadata: { 'uncompressed-size': '42' } }, sourceObjects: [{ name: 'a/p1' }, { name: 'a/p2' }] } } as any, (e: any, body: any) => e ? rej(e) : res(body)))
console.log(r)
const [cm] = await b.file('a/c2').getMetadata(); console.log('composed', cm.size, cm.metadata, cm.contentType)
const many = Array.from({ length: 33 }, () => ({ name: 'a/p1' }))
try { await new Promise((res, rej) => b.file('a/c3').request({ method: 'POST', uri: '/compose', json: { destination: {}, sourceObjects: many } } as any, (e: any, body: any) => e ? rej(e) : res(body))); console.log('33 ok!') } catch (e: any) { console.log('33 err', e.code, e.message) }
try { await new Promise((res, rej) => b.file('a/c3').request({ method: 'POST', uri: '/compose', json: { destination: {}, sourceObjects: [{name:'a/missing'}] } } as any, (e: any, body: any) => e ? rej(e) : res(body))); console.log('missing ok!') } catch (e: any) { console.log('missing err', e.code, e.message) }
const [d] = await b.file('a/c2').download({ start: 0, end: 0 }); console.log('first byte', JSON.stringify(d.toString()))
const [d2] = await b.file('a/c2').download({ start: 10, end: 10 }); console.log('last byte', JSON.stringify(d2.toString()))
const [d3] = await b.file('a/c2').download({ start: 8, end: 30 }); console.log('past end', JSON.stringify(d3.toString()))
// empty object
await new Promise((res, rej) => s.makeAuthenticatedRequest({ method: 'POST', uri: `${ep}/upload/storage/v1/b/b1/o`, qs: { uploadType: 'media', name: 'a/empty' }, body: Buffer.alloc(0), headers: { 'Content-Type': 'application/octet-stream' } } as any, ((e: any, bd: any) => e ? rej(e) : res(bd)) as any))
const [e0] = await b.file('a/empty').download(); console.log('empty', e0.length)
const [files, next, apiResp] = await b.getFiles({ prefix: 'a/', autoPaginate: false, maxResults: 2 }); console.log(files.map(f => f.name), next)
