#include <memory>

#include "irqchip/irqchip.h"
#include "irqchip/backends/kernel_irqchip.h"
#include "irqchip/backends/split_irqchip.h"
#include "irqchip/backends/user_irqchip.h"
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

std::unique_ptr<IrqChip> make_irqchip(IrqChipMode mode, const IrqChipOptions& options)
{
    switch (mode) {
    case IrqChipMode::kKernel: return std::make_unique<KernelIrqChip>();
    case IrqChipMode::kSplit: return std::make_unique<SplitIrqChip>(options.pit_policy);
    case IrqChipMode::kUser: return std::make_unique<UserIrqChip>(options.pit_policy);
    }
    throw Error("--irqchip: unknown mode");
}

}  // namespace kvmini
