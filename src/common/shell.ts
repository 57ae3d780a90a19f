// Quoting for sh, shared by everything walden hands to a shell: commands PostgreSQL runs (restore_command), pg_ctl's
// -o options, and the command line ssh runs through the remote user's shell.

/** Quotes one word for sh when it needs it: single quotes, and a quote inside as '\''. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_\-./=:@,+]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`
}
