/* The sandbox ("pause") process of the test node's pods: containerd's sandbox_image
 * (tests/k8s/image.sh builds it with gcc -static into a scratch image as /pause).
 *
 * It holds the pod's namespaces open and does nothing else: it sleeps in pause(), reaps
 * any child that ends up re-parented to it (it is PID 1 of the pod when the pod shares
 * its PID namespace), and exits 0 on SIGTERM or SIGINT. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int on(int sig, void (*handler)(int), int flags) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  return sigaction(sig, &action, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    static const char version[] = "subnetlab pause 1\n";
    return write(STDOUT_FILENO, version, sizeof version - 1) < 0;
  }
  if (getpid() != 1) {
    static const char warning[] = "pause: warning: not running as PID 1\n";
    if (write(STDERR_FILENO, warning, sizeof warning - 1) < 0) {
      /* nothing to do: stderr is gone */
    }
  }
  if (on(SIGINT, stop, 0) < 0 || on(SIGTERM, stop, 0) < 0 ||
      on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART) < 0) {
    return 1;
  }
  for (;;) {
    pause();
  }
  return 42; /* not reached */
}
