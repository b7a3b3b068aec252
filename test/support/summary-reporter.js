const { appendFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

/**
 * Prints one closing line, "tests: N passed, N failed, N skipped", that CI reads whatever the runner.
 *
 * It also tells the contract test when every other file has finished: `npm test` runs the files in parallel
 * workers, and the contract test (sorted last by test/support/contract-sequencer.js) starts as soon as a worker
 * is free, while the other worker may still run a file whose answers it must see. In the run's directory of
 * recorded answers (HCM_CONTRACT_RECORD_DIR, made by the integration project's global setup, which jest runs
 * before this reporter's onRunStart) it writes how many files the run has (RUN_FILE) and one line per finished
 * file (FINISHED_FILE); test/support/contract-check.ts's waitForOtherFiles reads them.
 */
const RUN_FILE = 'run-files.json';
const FINISHED_FILE = 'finished-files.log';

class SummaryReporter {
  dir() {
    return process.env.HCM_CONTRACT_RECORD_DIR;
  }
  onRunStart(results) {
    const dir = this.dir();
    if (dir) writeFileSync(join(dir, RUN_FILE), JSON.stringify({ total: results.numTotalTestSuites }));
  }
  onTestFileResult(test) {
    const dir = this.dir();
    if (dir) appendFileSync(join(dir, FINISHED_FILE), `${test.path}\n`);
  }
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(`\ntests: ${results.numPassedTests} passed, ${failed} failed, ${results.numPendingTests} skipped\n`);
  }
}
module.exports = SummaryReporter;
module.exports.RUN_FILE = RUN_FILE;
module.exports.FINISHED_FILE = FINISHED_FILE;
