/*
 * pause: the sandbox (infra) container of every pod on Berth's real node.
 *
 * It holds the pod's namespaces open and does nothing else: it sleeps until SIGINT or SIGTERM, then
 * exits 0, and as the pod's PID 1 (when the pod shares its PID namespace) it reaps every child that
 * exits, so no zombie piles up. The behaviour follows Kubernetes' own pause
 * (kubernetes/build/pause/linux/pause.c); this is Berth's own code, built statically by
 * `cargo xtask images` (gcc -static) so the image holds nothing but this binary.
 *
 *   pause        run until SIGINT or SIGTERM
 *   pause -v     print the version and exit
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

static void on_stop(int signal) {
  /* Only async-signal-safe calls here: write(2) and _exit(2). */
  static const char message[] = "pause: shutting down\n";
  (void)signal;
  (void)!write(STDERR_FILENO, message, sizeof message - 1);
  _exit(0);
}

static void on_child(int signal) {
  (void)signal;
  int saved = errno;
  /* Reap every child that has exited; more than one may be behind one SIGCHLD. */
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int handle(int signal, void (*handler)(int), int flags) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  return sigaction(signal, &action, NULL);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "-v") == 0) {
    printf("pause %s\n", VERSION);
    return 0;
  }
  if (argc != 1) {
    fprintf(stderr, "usage: pause [-v]\n");
    return 2;
  }
  if (getpid() != 1) {
    /* Not an error: without a shared PID namespace the sandbox is not PID 1. */
    fprintf(stderr, "pause: warning: not running as PID 1\n");
  }
  if (handle(SIGINT, on_stop, 0) < 0 || handle(SIGTERM, on_stop, 0) < 0 ||
      handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
  return 1; /* not reached */
}
