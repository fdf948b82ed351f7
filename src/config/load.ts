/** Loads and validates configuration once at start-up: file, then flags. */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors';
import { SCHEMA, type Config, type KeySpec } from './schema';

const BY_KEY = new Map<string, KeySpec>(SCHEMA.map((s) => [s.key, s]));

export function defaults(): Config {
  const c: Partial<Config> = {};
  for (const s of SCHEMA) (c as Record<string, unknown>)[s.field] = s.default;
  return c as Config;
}

/** Applies raw values (from a file or flags) to a config; throws ConfigError naming the key. */
export function apply(base: Config, raw: Record<string, unknown>, origin: string): Config {
  const out: Config = { ...base };
  for (const [key, value] of Object.entries(raw)) {
    const s = BY_KEY.get(key);
    if (!s) throw new ConfigError(key, `unknown key in ${origin}; known keys: ${[...BY_KEY.keys()].join(', ')}`);
    const r = s.parse(value);
    if (!r.ok) throw new ConfigError(key, `${JSON.stringify(value)} is not allowed (${origin}); allowed: ${r.allowed}`);
    (out as unknown as Record<string, unknown>)[s.field] = r.value;
  }
  if (out.mediaPortMin >= out.mediaPortMax) throw new ConfigError('media-port-max', `must be above media-port-min (${out.mediaPortMin})`);
  return out;
}

export function loadFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('config', `cannot read ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('config', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError('config', `${path} must hold a JSON object of key: value`);
  return parsed as Record<string, unknown>;
}

/** Parses `--key value`, `--key=value`, `--flag` (boolean true) and `--no-flag`. */
export function parseFlags(argv: string[]): { flags: Record<string, unknown>; configPath: string | undefined; rest: string[] } {
  const flags: Record<string, unknown> = {};
  const rest: string[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      rest.push(a);
      continue;
    }
    let [k, v] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (k === 'config') {
      configPath = v ?? argv[++i];
      if (!configPath) throw new ConfigError('config', 'needs a file path');
      continue;
    }
    if (k === 'json') { rest.push(a); continue; }
    const spec = BY_KEY.get(k) ?? (k.startsWith('no-') ? BY_KEY.get(k.slice(3)) : undefined);
    if (!spec) throw new ConfigError(k, `unknown flag --${k}; known: --config, ${[...BY_KEY.keys()].map((x) => '--' + x).join(', ')}`);
    const isBool = typeof spec.default === 'boolean';
    if (k.startsWith('no-') && isBool) {
      flags[spec.key] = false;
      continue;
    }
    if (v === undefined) {
      const next = argv[i + 1];
      if (isBool && (next === undefined || next.startsWith('--'))) v = 'true';
      else {
        if (next === undefined) throw new ConfigError(k, 'needs a value');
        v = next;
        i++;
      }
    }
    flags[spec.key] = v;
  }
  return { flags, configPath, rest };
}

export function loadConfig(argv: string[]): { config: Config; rest: string[] } {
  const { flags, configPath, rest } = parseFlags(argv);
  let config = defaults();
  if (configPath) config = apply(config, loadFile(configPath), configPath);
  config = apply(config, flags, 'command line');
  return { config, rest };
}
