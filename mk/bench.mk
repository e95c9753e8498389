# Benchmarks, apart from the tests: they report figures, they do not pass or
# fail. Each prints its ratios from one run (the machine is shared and noisy).
#   bench-startup  main() to first KVM_RUN, RSS beyond guest RAM (scripts/bench-startup.sh)
#   bench-boot     wall s to 'Run /init': kvmini vs QEMU microvm, kernel and split (scripts/bench-boot.sh)
#   bench-blk      virtio-blk model vs the file directly (scripts/bench-blk.sh, mk/fuzz.mk)
.PHONY: bench bench-startup bench-boot
bench-startup:
	scripts/bench-startup.sh
# Twice: the guest as it boots by default (TSC-deadline LAPIC timer), and with
# its tick on the PIT, so split mode runs its timer through kvmini's PIT and IOAPIC.
bench-boot: $(BUILD)/kvmini
	scripts/bench-boot.sh all
	scripts/bench-boot.sh --extra "clearcpuid=tsc_deadline_timer noapictimer" all
bench: bench-startup bench-boot bench-blk
