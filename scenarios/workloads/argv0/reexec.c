/* reexec: executes /proc/self/exe with the argument vector "first",
 * "second", "third"; the new image prints its argv joined by commas
 * (tonistiigi/binfmt's test/argv0_test.go, the way Go's and Docker's
 * re-exec helpers start themselves). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (getenv("QUS_REEXEC")) {
        for (int i = 0; i < argc; i++)
            printf("%s%s", i ? "," : "", argv[i]);
        printf("\n");
        return 0;
    }
    char *args[] = {"first", "second", "third", NULL};
    char *env[] = {"QUS_REEXEC=1", NULL};
    execve("/proc/self/exe", args, env);
    perror("reexec: execve /proc/self/exe");
    return 1;
}
