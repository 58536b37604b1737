/**
 * `npm run bench`: every figure as one JSON line `{"metric","value","unit","baseline","ratio"}`.
 * Select suites with BENCH=format,read,... (default: all). Figures go to bench/RESULTS.md by hand,
 * with the machine they ran on.
 */
const suites: Record<string, () => Promise<void>> = {
  format: async () => (await import('./format-bench.ts')).formatBench(),
}

const wanted = (process.env.BENCH ?? Object.keys(suites).join(',')).split(',')
for (const name of wanted) {
  const suite = suites[name]
  if (!suite) throw new Error(`unknown bench suite '${name}'; known: ${Object.keys(suites).join(', ')}`)
  console.error(`# bench ${name}`)
  await suite()
}
