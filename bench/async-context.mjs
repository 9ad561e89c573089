// Preloaded into the app by `BENCH_ASYNC_CONTEXT=1 npm run bench` (node --import): every HTTP request
// runs inside an AsyncLocalStorage store from its first event on, as it would if request state (or an
// OpenTelemetry context) travelled in an async context. The app itself never reads it: what is measured
// is the cost of propagating it through every promise of the request.
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';

const requestContext = new AsyncLocalStorage();
let requests = 0;
diagnosticsChannel.subscribe('http.server.request.start', ({ request }) => {
  requestContext.enterWith({ request: ++requests, url: request.url });
});
