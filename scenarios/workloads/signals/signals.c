/* The threads-and-signals workload: what QEMU's linux-user must get right
 * for multi-threaded programs (signal masks per thread, delivery to one
 * thread, queued real-time signals with their values, POSIX timers, system
 * calls interrupted by a signal, fork in a threaded process). Each line it
 * prints is a fact that holds only if delivery was right, independent of
 * scheduling. Exits 1 on the first broken expectation. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4
#define RT_SIGNALS 100
#define TIMER_TICKS 25

static sem_t delivered;             /* posted by the SIGUSR1 handler */
static __thread int usr1_here;      /* SIGUSR1 count of the thread it ran on */
static __thread pthread_t self_id;  /* set by each worker, read by the handler */
static pthread_t worker_ids[WORKERS];
static int usr1_wrong_thread;       /* handler ran on a thread other than the target */
static volatile sig_atomic_t usr2_seen;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "signals: " __VA_ARGS__);                      \
            fputc('\n', stderr);                                           \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static void on_usr1(int sig, siginfo_t *info, void *context)
{
    (void)sig, (void)info, (void)context;
    if (!pthread_equal(pthread_self(), self_id))
        usr1_wrong_thread = 1;
    usr1_here++;
    sem_post(&delivered);
}

static void on_usr2(int sig)
{
    (void)sig;
    usr2_seen = 1;
}

struct worker {
    int index;
    sem_t go, done;
    int count;
};

/* Waits to be told to report its thread-local SIGUSR1 count. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    self_id = pthread_self();
    sem_post(&w->done);              /* ready: self_id is set */
    while (sem_wait(&w->go) != 0)    /* interrupted by SIGUSR1: wait again */
        CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
    w->count = usr1_here;
    return NULL;
}

/* Blocks in read(2) on a pipe nobody writes, until SIGUSR2 interrupts it. */
static void *reader_main(void *arg)
{
    int fd = *(int *)arg;
    char c;
    ssize_t n = read(fd, &c, 1);
    return (void *)(long)(n < 0 && errno == EINTR ? 1 : 0);
}

struct waiter_result {
    int rt_count, rt_in_order, timer_ticks, timer_overruns;
    long rt_sum;
    int ended_by;
};

/* The one thread that takes the process-directed signals, with sigwaitinfo. */
static void *waiter_main(void *arg)
{
    struct waiter_result *r = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGALRM);
    sigaddset(&set, SIGTERM);
    r->rt_in_order = 1;
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0 && errno == EINTR)
            continue;
        CHECK(sig > 0, "sigwaitinfo: %s", strerror(errno));
        if (sig == SIGRTMIN) {
            CHECK(info.si_code == SI_QUEUE, "SIGRTMIN si_code %d", info.si_code);
            if (info.si_value.sival_int != r->rt_count)
                r->rt_in_order = 0;
            r->rt_sum += info.si_value.sival_int;
            r->rt_count++;
        } else if (sig == SIGALRM) {
            CHECK(info.si_code == SI_TIMER, "SIGALRM si_code %d", info.si_code);
            r->timer_ticks++;
            r->timer_overruns += info.si_overrun;
        } else {
            r->ended_by = sig;
            return NULL;
        }
    }
}

int main(void)
{
    struct utsname u;
    CHECK(uname(&u) == 0, "uname");
    printf("machine: %s\n", u.machine);

    /* Process-directed signals are blocked everywhere but in the waiter,
     * which waits for them: the mask is inherited by every thread. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGRTMIN);
    sigaddset(&blocked, SIGALRM);
    sigaddset(&blocked, SIGTERM);
    CHECK(pthread_sigmask(SIG_BLOCK, &blocked, NULL) == 0, "pthread_sigmask");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction SIGUSR1");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = 0; /* no SA_RESTART: read(2) must fail with EINTR */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0, "sigaction SIGUSR2");
    CHECK(sem_init(&delivered, 0, 0) == 0, "sem_init");

    /* 1. Thread-directed delivery: worker i gets i + 1 SIGUSR1s, one at a
     * time (standard signals do not queue), each handled on that thread. */
    struct worker workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        workers[i].index = i;
        sem_init(&workers[i].go, 0, 0);
        sem_init(&workers[i].done, 0, 0);
        CHECK(pthread_create(&worker_ids[i], NULL, worker_main, &workers[i]) == 0, "pthread_create");
        sem_wait(&workers[i].done);
    }
    for (int i = 0; i < WORKERS; i++)
        for (int k = 0; k <= i; k++) {
            CHECK(pthread_kill(worker_ids[i], SIGUSR1) == 0, "pthread_kill");
            while (sem_wait(&delivered) != 0)
                CHECK(errno == EINTR, "sem_wait");
        }
    printf("usr1 per thread:");
    for (int i = 0; i < WORKERS; i++) {
        sem_post(&workers[i].go);
        pthread_join(worker_ids[i], NULL);
        printf(" %d", workers[i].count);
    }
    printf("%s\n", usr1_wrong_thread ? " (some on the wrong thread)" : "");

    /* 2. Queued real-time signals keep their values and their order; a
     * POSIX timer's ticks arrive as SIGALRM with SI_TIMER. */
    struct waiter_result result;
    memset(&result, 0, sizeof result);
    pthread_t waiter;
    CHECK(pthread_create(&waiter, NULL, waiter_main, &result) == 0, "pthread_create");
    for (int i = 0; i < RT_SIGNALS; i++) {
        union sigval value = {.sival_int = i};
        CHECK(sigqueue(getpid(), SIGRTMIN, value) == 0, "sigqueue: %s", strerror(errno));
    }
    timer_t timer;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGALRM;
    CHECK(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0, "timer_create");
    struct itimerspec every = {.it_interval = {0, 2000000}, .it_value = {0, 2000000}};
    CHECK(timer_settime(timer, 0, &every, NULL) == 0, "timer_settime");
    /* Wait for the ticks (the waiter counts them), then stop the timer. */
    for (int waited = 0; waited < 5000; waited++) {
        if (__atomic_load_n(&result.timer_ticks, __ATOMIC_SEQ_CST) +
                __atomic_load_n(&result.timer_overruns, __ATOMIC_SEQ_CST) >= TIMER_TICKS)
            break;
        usleep(2000);
    }
    timer_delete(timer);

    /* 3. A blocked read(2) in another thread fails with EINTR when a
     * handler without SA_RESTART runs on that thread. */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, reader_main, &fds[0]) == 0, "pthread_create");
    void *interrupted = NULL;
    for (int tries = 0; tries < 500 && !usr2_seen; tries++) {
        usleep(10000); /* let it block in read(2) first */
        pthread_kill(reader, SIGUSR2);
    }
    pthread_join(reader, &interrupted);
    printf("read interrupted by SIGUSR2: %s\n", interrupted ? "EINTR" : "no");

    /* 4. fork in a threaded process: the child runs, exits 42. */
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0)
        _exit(42);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child, "waitpid");
    printf("fork: child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    /* 5. SIGTERM sent to the process ends the waiter's loop, once it has
     * taken every queued signal (a pending SIGTERM would go first). */
    for (int waited = 0; waited < 5000; waited++) {
        if (__atomic_load_n(&result.rt_count, __ATOMIC_SEQ_CST) >= RT_SIGNALS)
            break;
        usleep(2000);
    }
    CHECK(kill(getpid(), SIGTERM) == 0, "kill");
    pthread_join(waiter, NULL);
    printf("sigqueue: %d of %d, sum %ld, %s\n", result.rt_count, RT_SIGNALS, result.rt_sum,
           result.rt_in_order ? "in order" : "out of order");
    printf("timer: %s\n", result.timer_ticks + result.timer_overruns >= TIMER_TICKS
                              ? "at least 25 ticks" : "too few ticks");
    printf("waiter ended by: %s\n", result.ended_by == SIGTERM ? "SIGTERM" : "something else");
    return 0;
}
