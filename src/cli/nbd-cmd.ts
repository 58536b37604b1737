/** `snapswarm nbd list|start|stop`: a node's NBD exports through its HTTP API (`/v1/exports`). */
import { buildIdFlag, kindArg, requiredString, UsageError } from './args.ts'
import type { CommandInput } from './command.ts'
import { answerOf, apiAuthHeader, callApi, refusal } from './node-cmd.ts'

export async function nbdCommand({ values, positionals }: CommandInput): Promise<number> {
  const action = positionals[0]
  const api = requiredString(values, 'api').replace(/\/$/, '')
  const auth = await apiAuthHeader(values['api-token-file'] as string | undefined)
  const url = `${api}/v1/exports`
  let res: Response
  if (action === 'list') {
    res = await callApi(url, { headers: auth })
  } else if (action === 'start') {
    const build = buildIdFlag(values, 'build')
    if (!build) throw new UsageError('nbd start needs --build UUID')
    const body = { build, file: kindArg(values.file as string | undefined, '--file'), ...(values.overlay ? { overlay: values.overlay } : {}) }
    res = await callApi(url, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) })
  } else if (action === 'stop') {
    const name = requiredString(values, 'name')
    res = await callApi(`${url}?name=${encodeURIComponent(name)}${values.discard ? '&discard=true' : ''}`, { method: 'DELETE', headers: auth })
  } else {
    throw new UsageError(`<action>: expected list, start or stop, found '${action}'`)
  }
  const answer = await answerOf(res, url)
  if (res.status >= 300) throw refusal(res.status, answer, `nbd ${action}`)
  process.stdout.write(`${JSON.stringify(answer)}\n`)
  return 0
}
