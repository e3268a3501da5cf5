/* Command line: `embargo [run]`, `embargo check`, `embargo config check`,
 * `embargo report`, `embargo version`. */
#ifndef EMBARGO_PROXY_CLI_H
#define EMBARGO_PROXY_CLI_H

/* Runs the command ARGV asks for and returns the process exit status:
 * 0 success, 1 a checked destination is denied (check) or the proxy failed,
 * 2 usage or configuration errors. */
int cli_main(int argc, char **argv);

#endif
