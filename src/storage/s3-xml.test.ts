import assert from 'node:assert/strict'
import { test } from 'node:test'
import { xmlDecode, xmlElements, xmlEncode, xmlText, xmlTexts } from './s3-xml.js'

test('S3 XML: elements, entities, self-closing and empty elements', () => {
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Prefix>r/</Prefix>' +
    '<Contents><Key>r/a &amp; b&#x9;&lt;c&gt;</Key><Size>3</Size></Contents><Contents><Key>r/&#252;</Key></Contents>' +
    '<CommonPrefixes><Prefix>r/sub/</Prefix></CommonPrefixes><IsTruncated>false</IsTruncated><Marker/></ListBucketResult>'
  assert.deepEqual(xmlElements(xml, 'Contents').map((block) => xmlText(block, 'Key')), ['r/a & b\t<c>', 'r/ü'])
  assert.deepEqual(xmlElements(xml, 'CommonPrefixes').flatMap((block) => xmlTexts(block, 'Prefix')), ['r/sub/'])
  assert.equal(xmlText(xml, 'Prefix'), 'r/')
  assert.equal(xmlText(xml, 'Marker'), '')
  assert.equal(xmlText(xml, 'NextContinuationToken'), undefined)
  // RGW's error body: the code is there, the message is empty.
  assert.equal(xmlText('<Error><Code>NoSuchKey</Code><Message></Message></Error>', 'Message'), '')
})

test('S3 XML: what xmlEncode writes, xmlDecode reads back', () => {
  for (const text of ['plain', 'a&b<c>"d\'e', 'tab\tand\nnewline\r', 'ü € 😀']) assert.equal(xmlDecode(xmlEncode(text)), text)
  assert.equal(xmlEncode('a&b'), 'a&amp;b')
})
