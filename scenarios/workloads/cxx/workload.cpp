// The C++ workload: the standard library (containers, algorithms, strings),
// exceptions (thrown, rethrown, carried across threads by std::future) and
// threads (std::thread, std::async, a mutex, a condition variable, atomics).
// Every line it prints is independent of the architecture and of thread
// scheduling, so the scenario can compare it exactly.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <sys/utsname.h>

namespace {

// A checked error type, to see that catch-by-base and rethrow keep the type.
struct DomainError : std::runtime_error {
    explicit DomainError(const std::string &what, long value)
        : std::runtime_error(what), value(value) {}
    long value;
};

// Collatz steps of n; throws past a bound, to have an exception to carry.
long collatz(std::uint64_t n, long bound) {
    long steps = 0;
    while (n != 1) {
        n = n % 2 ? 3 * n + 1 : n / 2;
        if (++steps > bound) throw DomainError("collatz bound exceeded", static_cast<long>(n));
    }
    return steps;
}

// The longest Collatz chain below `limit`, split over `workers` threads,
// merged under a mutex: (start, steps), the smallest start on a tie.
std::pair<std::uint64_t, long> longest_chain(std::uint64_t limit, unsigned workers) {
    std::mutex lock;
    std::pair<std::uint64_t, long> best{1, 0};
    std::atomic<std::uint64_t> visited{0};
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < workers; ++w) {
        threads.emplace_back([&, w] {
            std::pair<std::uint64_t, long> mine{1, 0};
            for (std::uint64_t n = 1 + w; n < limit; n += workers) {
                long steps = collatz(n, 1000);
                if (steps > mine.second || (steps == mine.second && n < mine.first)) mine = {n, steps};
                visited.fetch_add(1, std::memory_order_relaxed);
            }
            std::lock_guard<std::mutex> guard(lock);
            if (mine.second > best.second || (mine.second == best.second && mine.first < best.first))
                best = mine;
        });
    }
    for (auto &t : threads) t.join();
    if (visited != limit - 1) throw std::logic_error("lost work");
    return best;
}

// A bounded queue between a producer and consumers: words counted in a map.
std::map<std::string, int> count_words(const std::vector<std::string> &words, unsigned consumers) {
    std::queue<std::string> queue;
    std::mutex lock;
    std::condition_variable ready;
    bool done = false;
    std::map<std::string, int> counts;
    std::vector<std::thread> threads;
    for (unsigned c = 0; c < consumers; ++c) {
        threads.emplace_back([&] {
            std::map<std::string, int> mine;
            for (;;) {
                std::unique_lock<std::mutex> guard(lock);
                ready.wait(guard, [&] { return done || !queue.empty(); });
                if (queue.empty()) break;
                std::string word = std::move(queue.front());
                queue.pop();
                guard.unlock();
                ++mine[word];
            }
            std::lock_guard<std::mutex> guard(lock);
            for (const auto &[word, n] : mine) counts[word] += n;
        });
    }
    for (const auto &word : words) {
        {
            std::lock_guard<std::mutex> guard(lock);
            queue.push(word);
        }
        ready.notify_one();
    }
    {
        std::lock_guard<std::mutex> guard(lock);
        done = true;
    }
    ready.notify_all();
    for (auto &t : threads) t.join();
    return counts;
}

}  // namespace

int main() {
    utsname u{};
    if (uname(&u) != 0) return 1;
    std::cout << "machine: " << u.machine << '\n';

    auto [start, steps] = longest_chain(300000, 4);
    std::cout << "collatz: longest below 300000 starts at " << start << " (" << steps << " steps)\n";

    // Generated text: 20000 words from a small vocabulary.
    const std::vector<std::string> vocabulary{"qemu", "binfmt", "arm64", "s390x", "emulation",
                                              "container", "kernel", "user", "static"};
    std::vector<std::string> words;
    std::uint32_t state = 7;
    for (int i = 0; i < 20000; ++i) {
        state = state * 1103515245u + 12345u;
        words.push_back(vocabulary[(state >> 16) % vocabulary.size()]);
    }
    auto counts = count_words(words, 3);
    std::vector<std::pair<std::string, int>> ranked(counts.begin(), counts.end());
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const auto &a, const auto &b) { return a.second > b.second; });
    std::ostringstream top;
    for (std::size_t i = 0; i < 3; ++i) top << (i ? " " : "") << ranked[i].first << '=' << ranked[i].second;
    int total = std::accumulate(counts.begin(), counts.end(), 0,
                                [](int sum, const auto &entry) { return sum + entry.second; });
    std::cout << "words: " << total << " total, top " << top.str() << '\n';

    // An exception thrown in another thread reaches this one through a
    // future, with its type and data intact.
    auto failing = std::async(std::launch::async, [] { return collatz(27, 100); });
    try {
        failing.get();
        std::cout << "exception: none\n";
    } catch (const std::runtime_error &e) {
        const auto *domain = dynamic_cast<const DomainError *>(&e);
        std::cout << "exception: " << e.what() << " at " << (domain ? domain->value : -1) << '\n';
    }

    // Nested rethrow through std::exception_ptr, and a standard exception.
    std::exception_ptr saved;
    try {
        try {
            std::vector<int>{}.at(3);
        } catch (const std::out_of_range &) {
            saved = std::current_exception();
            throw;
        }
    } catch (const std::logic_error &) {
        try {
            std::rethrow_exception(saved);
        } catch (const std::out_of_range &) {
            std::cout << "rethrow: out_of_range caught twice\n";
        }
    }
    return 0;
}
