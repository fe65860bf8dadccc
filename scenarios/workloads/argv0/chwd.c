/* chwd FILE: changes directory to /, then prints where /proc/self/exe
 * points and whether that file's bytes are FILE's (tonistiigi/binfmt's
 * test/change-workdir/chwd.go): under emulation /proc/self/exe must be the
 * program, not the emulator, even after a relative start and a chdir. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int same_content(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

int main(int argc, char **argv)
{
    if (argc != 2 || chdir("/") != 0)
        return 2;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    exe[n] = '\0';
    printf("%s %s\n", exe, same_content("/proc/self/exe", argv[1]) ? "same" : "differs");
    return 0;
}
