#include "vmm/vm_control.h"

#include "vmm/kvm.h"

namespace kvmini {

void VmControl::request_stop(int exit_status, std::string reason)
{
    std::vector<Vcpu*> vcpus;
    {
        std::lock_guard lock(mutex_);
        if (stopping_.load()) return;
        exit_status_ = exit_status;
        reason_ = std::move(reason);
        stopping_.store(true, std::memory_order_release);
        vcpus = vcpus_;
    }
    for (Vcpu* v : vcpus) {
        if (kick_)
            kick_(*v);
        else
            v->kick();
    }
    event_.signal();
}

}  // namespace kvmini
