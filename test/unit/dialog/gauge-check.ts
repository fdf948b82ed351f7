/**
 * The pinholes gauge (DialogTable.pinholes) is kept as dialogs change rather than counted per
 * read: after every public operation of every table these tests drive, it must equal the count of
 * the table's dialogs (countPinholes). Imported by the dialog tests for its effect.
 */
import assert from 'node:assert/strict';
import { DialogTable } from '../../../src/dialog/dialog-table';

const OPERATIONS = ['observe', 'adopt', 'takeover', 'standby', 'checkPinholesSlice', 'sweep', 'readdress', 'afterFlush', 'repairSlice', 'closeAll'] as const;

export let gaugeChecks = 0;

const proto = DialogTable.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of OPERATIONS) {
  const f = proto[name];
  assert.equal(typeof f, 'function', `DialogTable.${name}`);
  proto[name] = function (this: DialogTable, ...a: unknown[]) {
    const r = f!.apply(this, a);
    assert.equal(this.pinholes, this.countPinholes(), `pinholes gauge after ${name}`);
    gaugeChecks++;
    return r;
  };
}
