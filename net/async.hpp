// Small pieces for code on Asio's loops: errors as values in coroutines, completing on the caller's
// loop from another thread, and running slow work on a thread pool.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <exception>
#include <functional>
#include <memory>

namespace kv::net {

namespace asio = boost::asio;

// `redirect_error(use_awaitable, ec)`: the error lands in `ec` instead of an exception.
inline auto use_ec(boost::system::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// Wraps a completion handler so that it can be called from any thread: the call is posted to the
// handler's own executor, which is kept from running out of work meanwhile. The wrapper is copyable
// (it fits a std::function) and must be called exactly once.
template <class Handler>
auto post_back(Handler handler) {
  struct State {
    Handler handler;
    asio::executor_work_guard<asio::associated_executor_t<Handler>> work;
  };
  auto ex = asio::get_associated_executor(handler);
  auto state = std::make_shared<State>(State{std::move(handler), asio::make_work_guard(ex)});
  return [state](auto... args) {
    asio::post(state->work.get_executor(), [state, ... args = std::move(args)]() mutable {
      state->work.reset();
      std::move(state->handler)(std::move(args)...);
    });
  };
}

// Runs fn() on `pool` and completes with its result (or its exception) on the caller's executor:
// for work too slow for an event loop, such as building a large ring.
template <class R, class Token>
auto async_run(asio::thread_pool& pool, std::function<R()> fn, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr, R)>(
      [&pool](auto handler, std::function<R()> f) {
        asio::post(pool, [done = post_back(std::move(handler)), f = std::move(f)]() mutable {
          std::exception_ptr error;
          R result{};
          try {
            result = f();
          } catch (...) {
            error = std::current_exception();
          }
          done(error, std::move(result));
        });
      },
      token, std::move(fn));
}

}  // namespace kv::net
