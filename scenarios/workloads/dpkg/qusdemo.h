/* libqusdemo: Fibonacci numbers, from a shared library. */
#ifndef QUSDEMO_H
#define QUSDEMO_H
unsigned long long qusdemo_fib(unsigned n);
#endif
