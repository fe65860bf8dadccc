/* printargs: prints its whole argv, argv[0] included, separated by spaces
 * (tonistiigi/binfmt's test/print/printargs.go). */
#include <stdio.h>

int main(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        printf("%s%s", i ? " " : "", argv[i]);
    printf("\n");
    return 0;
}
