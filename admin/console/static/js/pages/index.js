// The console's pages, in navigation order. Each module exports `page` (see the contract at the
// top of ../app.js). Add a page with one import line and one entry in the array.
import { page as keys } from './keys.js';
import { page as tenants } from './tenants.js';
import { page as users } from './users.js';
import { page as tokens } from './tokens.js';

export const pages = [
  keys,
  tenants,
  users,
  tokens,
];
