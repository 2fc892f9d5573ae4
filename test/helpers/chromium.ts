import { execSync } from 'node:child_process';

/** Debian's chromium; installed on first use when missing (the test setup runs as root in CI). */
export function chromiumPath(): string {
  const find = () => {
    try {
      return execSync('command -v chromium', { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  let path = find();
  if (!path) {
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium', { stdio: 'ignore', timeout: 300_000 });
    path = find();
  }
  if (!path) throw new Error('chromium is not installed and could not be installed');
  return path;
}

/** Flags for a headless Chromium in CI containers, with no traffic beyond what a test asks for. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run'];
