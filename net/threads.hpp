// The calling thread's name and CPU priority, as the OS sees them (Linux: `top -H`, `ps -L`). kvnode
// runs its background work (anti-entropy's pull, and the peers' requests it serves) on threads it
// names and lowers, so that the scheduler hands a core to a client's request first.
#pragma once

#include <string>
#include <string_view>

namespace kv::net {

// Names the calling thread (the first 15 bytes). Best effort: a failure changes nothing else.
void name_this_thread(std::string_view name);

// Lowers the calling thread's priority by `steps` nice levels below what it has now (at most 19),
// leaving the process's other threads as they are. False with `err` when the OS refused.
bool lower_this_thread(int steps, std::string& err);

}  // namespace kv::net
