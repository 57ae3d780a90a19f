// The little XML S3 speaks: its responses are flat documents with known element names (ListBucketResult, Error,
// InitiateMultipartUploadResult, DeleteResult, ...), never nesting an element inside one of the same name, and no
// namespaces walden needs. Reading them needs element text and entity decoding, not a general XML parser.

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

/** Decodes the five named entities and numeric character references. */
export function xmlDecode(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, name: string) =>
    name.startsWith('#x') ? String.fromCodePoint(Number.parseInt(name.slice(2), 16))
    : name.startsWith('#') ? String.fromCodePoint(Number.parseInt(name.slice(1), 10))
    : ENTITIES[name]!,
  )
}

/** Escapes text for an element's content (keys in DeleteObjects). */
export function xmlEncode(text: string): string {
  return text.replace(/[&<>"'\r\n\t]/g, (char) =>
    char === '&' ? '&amp;' : char === '<' ? '&lt;' : char === '>' ? '&gt;' : char === '"' ? '&quot;' : char === "'" ? '&apos;' : `&#x${char.charCodeAt(0).toString(16)};`,
  )
}

/** The raw (undecoded) content of every `<tag>` element in `xml`, in document order; `<tag/>` gives ''. */
export function xmlElements(xml: string, tag: string): string[] {
  const found: string[] = []
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${tag}>)`, 'g')
  for (const match of xml.matchAll(pattern)) found.push(match[1] ?? '')
  return found
}

/** The decoded text of the first `<tag>` element, or undefined when there is none. */
export function xmlText(xml: string, tag: string): string | undefined {
  const [first] = xmlElements(xml, tag)
  return first === undefined ? undefined : xmlDecode(first)
}

/** The decoded text of every `<tag>` element. */
export function xmlTexts(xml: string, tag: string): string[] {
  return xmlElements(xml, tag).map(xmlDecode)
}
