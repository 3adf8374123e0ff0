// The console's pages, in navigation order. Each module exports `page` (see the contract at the
// top of ../app.js). Add a page with one import line and one entry in the array.
import { page as keys } from './keys.js';
import { page as tenants } from './tenants.js';
import { page as users } from './users.js';
import { page as tokens } from './tokens.js';
import { page as overview } from './overview.js';
import { page as quotas } from './quotas.js';
import { page as pricing } from './pricing.js';
import { page as providers } from './providers.js';
import { page as usage } from './usage.js';
import { page as credits } from './credits.js';
import { page as auditLog } from './audit-log.js';

// The Overview comes first: the shell lands on the first page a principal may read, and every
// role that reads anything reads the Overview.
export const pages = [
  overview,
  keys,
  tenants,
  users,
  tokens,
  quotas,
  pricing,
  providers,
  usage,
  credits,
  auditLog,
];
