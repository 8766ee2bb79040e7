// Reads a Parquet file with hyparquet (an independent reader) and prints
// its schema and every row as JSON, values in a form the test can compare
// exactly: BigInt as a decimal string, timestamps as microseconds (string),
// bytes as base64, floats by their IEEE bits where they are not finite.
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'

const file = await asyncBufferFromFile(process.argv[2])
const meta = await parquetMetadataAsync(file)
const rows = await parquetReadObjects({
  file, compressors, utf8: false,
  parsers: { timestampFromMicroseconds: (us) => ({ micros: us.toString() }) },
})
const out = (v) => {
  if (v === null || v === undefined) return null
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number') return Number.isFinite(v) ? { num: v } : { num: String(v) }
  if (v instanceof Uint8Array) return { b64: Buffer.from(v).toString('base64') }
  return v
}
const schema = meta.schema.slice(1).map((s) => ({
  name: s.name, type: s.type, repetition: s.repetition_type,
  converted: s.converted_type ?? null, logical: s.logical_type ? s.logical_type.type : null,
}))
const groups = meta.row_groups.map((g) => ({ rows: Number(g.num_rows), codec: g.columns[0].meta_data.codec }))
console.log(JSON.stringify({ numRows: Number(meta.num_rows), createdBy: meta.created_by, schema, groups,
  rows: rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, out(v)]))) }))
