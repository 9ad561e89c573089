// Preloaded into a test server (node --import) by tests/integration/process-faults.test.ts: a request
// with `x-test-fault: reject` makes a promise rejection that no handler takes, one with `x-test-fault:
// throw` an exception that nothing catches, each while the request is being served. Tests only.
import diagnosticsChannel from 'node:diagnostics_channel';

diagnosticsChannel.subscribe('http.server.request.start', ({ request }) => {
  const fault = request.headers['x-test-fault'];
  if (fault === 'reject') void Promise.reject(new Error('a rejection no handler takes (test fault)'));
  if (fault === 'throw') {
    setImmediate(() => {
      throw new Error('an exception nothing catches (test fault)');
    });
  }
});
