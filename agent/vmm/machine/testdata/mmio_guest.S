# MMIO guest: a 4-byte write, an 8-byte read echoed +1, an unclaimed read reported back, then done.
.code64
.globl _start
_start:
  mov $0xd0000000, %rbx
  movl $0xcafe, 8(%rbx)
  mov 0x10(%rbx), %rax
  add $1, %rax
  mov %rax, 0x18(%rbx)
  mov $0xe0000000, %rcx
  mov (%rcx), %eax
  mov %eax, 0x20(%rbx)
  movb $1, 0x28(%rbx)
1:
  hlt
  jmp 1b
