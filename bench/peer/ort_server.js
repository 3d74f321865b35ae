#!/usr/bin/env node
// The ONNX Runtime peer of deconvd's bench: onnxruntime-node (its bundled CPU
// build) behind Node's http module, speaking the KServe v2 requests deconvd
// speaks, written as a user who cares about speed writes it:
//
//   POST /v2/models/<name>/infer  JSON ("inputs"[0]."data" flat) or the binary
//                                 tensor extension (Inference-Header-Content-
//                                 Length; "binary_data_output" answers in binary)
//   GET  /v2/health/ready
//
// N processes (node:cluster, the primary hands connections out) x M intra-op
// threads each (intraOpNumThreads M, interOpNumThreads 1, sequential), one
// session per model created once per process. Per keep-alive connection the
// request body lands in one reused buffer, placed so the tensor bytes are
// 4-byte aligned, and the input tensor is a Float32Array view of it (no copy);
// the output tensor is preallocated per connection and model and handed to
// run() as the fetch, so ORT writes straight into the bytes the response sends.
//
//   node ort_server.js --port P --procs N --threads M name=file.onnx...
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const path = require('node:path');

function parseArgs(argv) {
  const a = { port: 0, procs: 1, threads: 1, models: {} };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--port') a.port = Number(argv[++i]);
    else if (v === '--procs') a.procs = Number(argv[++i]);
    else if (v === '--threads') a.threads = Number(argv[++i]);
    else if (v.includes('=')) {
      const [n, f] = v.split('=');
      a.models[n] = path.resolve(f);
    } else throw new Error(`ort_server: unknown argument ${v}`);
  }
  if (!a.port || !Object.keys(a.models).length) throw new Error('ort_server: --port and name=file.onnx needed');
  return a;
}

const args = parseArgs(process.argv.slice(2));

if (cluster.isPrimary && args.procs > 1) {
  for (let i = 0; i < args.procs; i++) cluster.fork();
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === args.procs) console.error(`ort_server: listening procs=${args.procs}`);
  });
  cluster.on('exit', (w, code, sig) => {
    console.error(`ort_server: worker ${w.process.pid} exited (${sig || code})`);
    process.exit(1);
  });
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    process.exit(0);
  });
} else {
  serve().catch((e) => { console.error(e); process.exit(1); });
}

function jsonError(res, status, msg) {
  const b = JSON.stringify({ error: msg });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
  res.end(b);
}

async function serve() {
  const ort = require('onnxruntime-node');
  const opts = {
    intraOpNumThreads: args.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  const models = {};
  for (const [name, file] of Object.entries(args.models)) {
    const session = await ort.InferenceSession.create(file, opts);
    const meta = session.inputMetadata ? session.inputMetadata[0] : null;
    const outMeta = session.outputMetadata ? session.outputMetadata[0] : null;
    models[name] = {
      session, input: session.inputNames[0], output: session.outputNames[0],
      inShape: meta && meta.shape ? meta.shape : null, outShape: outMeta && outMeta.shape ? outMeta.shape : null,
    };
  }

  // Per connection: the body buffer (grown when needed) and, per model and
  // output shape, the preallocated output tensor. A keep-alive connection
  // carries one request at a time, so they are free again by the next one.
  function connState(sock) {
    if (!sock.dcv) sock.dcv = { ab: new ArrayBuffer(1 << 16), outs: {} };
    return sock.dcv;
  }

  async function infer(m, st, name, x, shape) {
    const n = shape.reduce((p, v) => p * v, 1);
    if (x.length !== n) throw Object.assign(new Error(`input has ${x.length} values, shape says ${n}`), { status: 400 });
    const feeds = { [m.input]: new ort.Tensor('float32', x, shape) };
    // output shape: the static one with the batch of this request
    let out = null;
    if (m.outShape && m.outShape.slice(1).every((d) => typeof d === 'number')) {
      const oshape = [shape[0], ...m.outShape.slice(1)];
      const key = `${name}:${oshape.join('x')}`;
      out = st.outs[key];
      if (!out) out = st.outs[key] = new ort.Tensor('float32', new Float32Array(oshape.reduce((p, v) => p * v, 1)), oshape);
    }
    const r = out ? await m.session.run(feeds, { [m.output]: out }) : await m.session.run(feeds);
    return r[m.output];
  }

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v2/health/ready') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 14 });
      res.end('{"ready":true}');
      return;
    }
    const mm = /^\/v2\/models\/([^/]+)\/infer$/.exec(req.url);
    if (req.method !== 'POST' || !mm) return jsonError(res, 404, 'not found');
    const name = mm[1];
    const m = models[name];
    if (!m) return jsonError(res, 404, `unknown model ${name}`);
    const st = connState(req.socket);
    const len = Number(req.headers['content-length'] || 0);
    const hlh = req.headers['inference-header-content-length'];
    const hl = hlh === undefined ? -1 : Number(hlh);
    // place the body so that its tensor bytes (after hl header bytes) start 4-byte aligned
    const pad = hl >= 0 ? (4 - (hl % 4)) % 4 : 0;
    if (st.ab.byteLength < len + pad) st.ab = new ArrayBuffer(len + pad);
    const body = new Uint8Array(st.ab, pad, len);
    let got = 0;
    let overflow = false;
    req.on('data', (chunk) => {
      if (got + chunk.length > len) { overflow = true; return; }
      body.set(chunk, got);
      got += chunk.length;
    });
    req.on('end', async () => {
      try {
        if (overflow || got !== len) return jsonError(res, 400, 'body length does not match Content-Length');
        let head, x;
        if (hl >= 0) {
          head = JSON.parse(Buffer.from(st.ab, pad, hl).toString('utf8'));
          const inp = head.inputs[0];
          const n = inp.shape.reduce((p, v) => p * v, 1);
          if (hl + n * 4 > len) return jsonError(res, 400, 'binary tensor shorter than its shape');
          x = new Float32Array(st.ab, pad + hl, n);          // in place, no copy
        } else {
          head = JSON.parse(Buffer.from(st.ab, pad, len).toString('utf8'));
          x = Float32Array.from(head.inputs[0].data);
        }
        const shape = head.inputs[0].shape;
        const y = await infer(m, st, name, x, shape);
        const binary = !!(head.parameters && head.parameters.binary_data_output);
        if (binary) {
          const out = { name: 'output', datatype: 'FP32', shape: y.dims };
          const doc = { model_name: name, model_version: '1', outputs: [out] };
          const raw = Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength);
          out.parameters = { binary_data_size: raw.length };
          const js = Buffer.from(JSON.stringify(doc));
          res.writeHead(200, {
            'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': js.length,
            'Content-Length': js.length + raw.length,
          });
          res.write(js);
          res.end(raw);
        } else {
          // JSON.stringify of a plain array: faster in V8 than a typed array's join
          const js = JSON.stringify({
            model_name: name, model_version: '1',
            outputs: [{ name: 'output', datatype: 'FP32', shape: y.dims, data: Array.from(y.data) }],
          });
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(js) });
          res.end(js);
        }
      } catch (e) {
        jsonError(res, e.status || 400, String(e.message || e));
      }
    });
  });
  server.keepAliveTimeout = 60000;
  server.headersTimeout = 65000;
  server.listen(args.port, '127.0.0.1', () => {
    if (cluster.isPrimary) console.error('ort_server: listening procs=1');
  });
}
