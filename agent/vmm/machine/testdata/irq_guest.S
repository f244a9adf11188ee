# Interrupt guest: masks the PIC, enables the LAPIC, routes IOAPIC pin 10 to vector 0x30 (edge,
# fixed, APIC 0), reports ready on port 0x503 and sleeps in HLT. The handler counts at 0x9000,
# reports the count on port 0x505 and sends EOI.
.code64
.globl _start
_start:
  mov $0xff, %al
  out %al, $0x21
  out %al, $0xa1
  lea handler(%rip), %rax
  lea idt+0x30*16(%rip), %rdi
  mov %ax, (%rdi)
  movw $0x08, 2(%rdi)
  movw $0x8e00, 4(%rdi)
  shr $16, %rax
  mov %ax, 6(%rdi)
  shr $16, %rax
  mov %eax, 8(%rdi)
  movl $0, 12(%rdi)
  lidt idtr(%rip)
  mov $0xfee000f0, %rbx
  movl $0x1ff, (%rbx)
  mov $0xfec00000, %rbx
  movl $0x24, (%rbx)
  movl $0x30, 0x10(%rbx)
  movl $0x25, (%rbx)
  movl $0, 0x10(%rbx)
  mov $0x503, %dx
  out %al, (%dx)
  sti
1:
  hlt
  jmp 1b
handler:
  push %rax
  push %rdx
  incq 0x9000
  mov 0x9000, %rax
  mov $0x505, %dx
  out %al, (%dx)
  mov $0xfee000b0, %rax
  movl $0, (%rax)
  pop %rdx
  pop %rax
  iretq
.balign 8
idtr:
  .word 256*16-1
  .quad idt
.balign 16
idt:
  .fill 256*16, 1, 0
