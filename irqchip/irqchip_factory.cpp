#include <memory>

#include "irqchip/irqchip.h"
#include "irqchip/kernel_irqchip.h"
#include "vmm/error.h"

namespace kvmini {

std::string to_string(IrqChipMode mode)
{
    switch (mode) {
    case IrqChipMode::kKernel: return "kernel";
    case IrqChipMode::kSplit: return "split";
    case IrqChipMode::kUser: return "user";
    }
    return "?";
}

std::unique_ptr<IrqChip> make_irqchip(IrqChipMode mode)
{
    switch (mode) {
    case IrqChipMode::kKernel: return std::make_unique<KernelIrqChip>();
    case IrqChipMode::kSplit:
    case IrqChipMode::kUser: break;
    }
    throw Error("--irqchip " + to_string(mode) + ": not implemented yet (only 'kernel' is)");
}

}  // namespace kvmini
