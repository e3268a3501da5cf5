/* embargo: the command-line entry point. Everything else lives in the core
 * library (see proxy/cli.c). */
#include "proxy/cmd/cli.h"

int main(int argc, char **argv) {
  return cli_main(argc, argv);
}
