// Builds the package in the current directory with its tsdown.config.ts. It calls tsdown's API
// rather than its CLI because the CLI prints a Node 20 deprecation notice on every run, and Node 20
// is a platform we support on purpose (engines >=20, CI runs on it); tsdown is pinned to 0.21.x,
// the last minor that builds on Node 20.
import { build } from 'tsdown';

await build({ logLevel: 'warn' });
