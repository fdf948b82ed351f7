/**
 * The media scenarios run once with sip-alg, once with the kernel's SIP helper
 * (nf_conntrack_sip + nf_nat_sip through `-j CT --helper sip`) and once with plain NAT, in one run.
 * Needs root. Prints a table; it asserts nothing (the tests assert on sip-alg).
 */
import { forked, prepare, reinvite, singleCall, trunk, twoPhonesRtp, type Mode } from '../src/lab/media';
import type { Lab } from '../src/lab/lab';

export async function kernelCompare(out: (s: string) => void): Promise<void> {
  const modes: Mode[] = ['alg', 'kernel', 'none'];
  const rows: string[][] = [['scenario', 'sip-alg', 'kernel helper', 'plain NAT']];
  const cell: Record<string, string[]> = { two: [], trunk: [], reinv: [], early: [], hold: [], fork: [] };
  const run = async (id: string, phones: number, mode: Mode, fn: (lab: Lab) => Promise<string>) => {
    const { lab } = await prepare(`cmp${mode[0]}${id}`, phones, mode);
    try {
      cell[id]!.push(await fn(lab));
    } catch (e) {
      cell[id]!.push(`error: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      await lab.close();
    }
  };
  for (const mode of modes) {
    await run('early', 1, mode, async (lab) => { const r = await singleCall(lab, 'uas-early.xml', 'uac-rtp.xml', 3000); return `calls ${r.callsOk ? 'ok' : 'FAILED'}; early audio in ${r.phoneRx}/236; out ${r.providerRx}/236`; });
    await run('hold', 1, mode, async (lab) => { const r = await singleCall(lab, 'uas-hold.xml', 'uac-hold.xml', 3000); return `calls ${r.callsOk ? 'ok' : 'FAILED'}; pinholes on hold ${r.sampled}; audio after resume ${r.phoneRx}/236`; });
    await run('fork', 1, mode, async (lab) => { const r = await forked(lab); return `calls ${r.callsOk ? 'ok' : 'FAILED'}; audio from winner ${r.phoneRx}/236; flows to loser ${r.loserFlows}`; });
    {
      const { lab } = await prepare(`cmp${mode[0]}1`, 2, mode);
      try {
        const r = await twoPhonesRtp(lab);
        const prov = [...r.providerRxByPort.values()];
        cell.two!.push(`calls ${r.callsOk ? 'ok' : 'FAILED'}; RTP in ${r.phoneRx.join('/')} of 236; out ${prov.join('/') || 0} via ${r.providerRxByPort.size} ports; after: ${r.after.exp} exp`);
      } finally {
        await lab.close();
      }
    }
    {
      const { lab } = await prepare(`cmp${mode[0]}2`, 1, mode);
      try {
        const r = await trunk(lab, 200);
        cell.trunk!.push(`calls ${r.callsOk ? 'ok' : 'FAILED'}; pinholes ${r.during}; delivered ${r.delivered}/200`);
      } finally {
        await lab.close();
      }
    }
    {
      const { lab } = await prepare(`cmp${mode[0]}3`, 1, mode);
      try {
        const r = await reinvite(lab);
        cell.reinv!.push(`calls ${r.callsOk ? 'ok' : 'FAILED'}; audio before ${r.rxBefore}, after ${r.rxAfter} of 236`);
      } finally {
        await lab.close();
      }
    }
  }
  rows.push(['2 phones, same RTP port, far end first', ...cell.two!]);
  rows.push(['200 calls on one trunk', ...cell.trunk!]);
  rows.push(['re-INVITE moves the phone\'s port', ...cell.reinv!]);
  rows.push(['early media (183 + audio)', ...cell.early!]);
  rows.push(['hold and resume', ...cell.hold!]);
  rows.push(['forked call (183 from A, 200 from B)', ...cell.fork!]);
  for (const r of rows) out(`| ${r.join(' | ')} |`);
}

if (require.main === module) kernelCompare((s) => console.log(s)).catch((e) => { console.error(e); process.exit(1); });
