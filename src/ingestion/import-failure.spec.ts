import { AppError } from '../common/errors';
import { StorageError } from '../storage/object-storage';
import { describeFailure, formatBytes, PermanentImportFailure } from './import-failure';
import { IngestError } from './ingestion.errors';

describe('describeFailure', () => {
  const url = 'http://10.0.0.5/images/centos.qcow2';

  it('names the server and its answer for an HTTP error', () => {
    const e = new IngestError('HTTP_STATUS', 'The server answered HTTP 404 Not Found', { details: { status: 404, url } });
    expect(describeFailure(e, url)).toMatchObject({ code: 'HTTP_STATUS', reason: `The server at ${url} answered 404 Not Found`, permanent: true });
  });

  it("keeps the format checker's sentence for refused content, and makes it permanent", () => {
    const e = new IngestError('FORMAT_UNSAFE', 'The qcow2 image depends on a backing file ("base.img"); only standalone images are accepted');
    expect(describeFailure(e, url)).toMatchObject({ code: 'FORMAT_UNSAFE', reason: e.message, permanent: true });
  });

  it('says how much quota was missing', () => {
    const e = new AppError('QUOTA_EXCEEDED', 'no room', { requested: 3 * 1024 ** 3, remaining: 1024 ** 3, limit: 10 * 1024 ** 3 });
    expect(describeFailure(e)).toMatchObject({
      code: 'QUOTA_EXCEEDED',
      permanent: true,
      reason: "The department's image storage quota has no room for this file: 3.00 GiB more were needed, 1.00 GiB is left of 10.0 GiB",
    });
  });

  it('lets a later attempt retry a download that kept failing, storage errors and the unexpected', () => {
    expect(describeFailure(new IngestError('ATTEMPTS_EXHAUSTED', 'Gave up after 5 failed attempts; last: refused'), url)).toMatchObject({
      permanent: false,
      reason: 'The download from 10.0.0.5 kept failing. Gave up after 5 failed attempts; last: refused',
    });
    expect(describeFailure(new StorageError('UPLOAD_ABORTED', 'x'))).toMatchObject({ code: 'STORAGE_FAILED', permanent: false });
    expect(describeFailure(new Error('db down'))).toMatchObject({ code: 'IMPORT_FAILED', reason: 'The import failed: db down', permanent: false });
  });

  it('passes a failure already described through, and clips long reasons', () => {
    const f = { code: 'CHECKSUM_MISMATCH' as const, reason: 'x', permanent: true };
    expect(describeFailure(new PermanentImportFailure(f))).toBe(f);
    expect(describeFailure(new Error('y'.repeat(5000))).reason).toHaveLength(1000);
  });

  it('formats sizes', () => {
    expect(formatBytes(512)).toBe('512 bytes');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200.0 MiB');
  });
});
