/**
 * Jest's default order (slowest and failed first), except that the contract test runs last: it compares every
 * answer the suites before it recorded with openapi.yaml (test/integration/contract-coverage.int-spec.ts).
 */
const Sequencer = require('@jest/test-sequencer').default;

const LAST = /contract-coverage\.int-spec\.ts$/;

class ContractLastSequencer extends Sequencer {
  async sort(tests) {
    const sorted = Array.from(await super.sort(tests));
    return [...sorted.filter((t) => !LAST.test(t.path)), ...sorted.filter((t) => LAST.test(t.path))];
  }
}

module.exports = ContractLastSequencer;
