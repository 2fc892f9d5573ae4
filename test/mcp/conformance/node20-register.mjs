// `node --import ./node20-register.mjs …/conformance/dist/index.js`: lets the suite run on Node 20.
import { register } from 'node:module';

register(new URL('./node20-hooks.mjs', import.meta.url));
