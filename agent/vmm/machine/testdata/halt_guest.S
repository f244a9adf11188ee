# Halts with interrupts off: the vCPU sleeps in the kernel for good.
.code64
.globl _start
_start:
  movq $0x7777, 0x9000
  cli
  hlt
  jmp _start
