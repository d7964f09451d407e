//! An assembler for the eBPF instruction set (Documentation/bpf/standardization): instructions
//! as values, named registers and conditions, and forward jumps to labels resolved when the
//! program is finished. Only the instructions podnet's programs use are here.

/// A register. R0 holds return values, R1–R5 arguments (clobbered by calls), R6–R9 survive
/// calls, R10 is the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// The width of a load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// A jump condition: `reg <cond> operand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Ne,
    /// Unsigned greater than.
    Gt,
    /// Any bit in common.
    Set,
}

impl Cond {
    fn op(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Set => 0x40,
            Cond::Ne => 0x50,
        }
    }
}

// Instruction classes, modes and operations.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const MOV: u8 = 0xb0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `BPF_PSEUDO_MAP_FD`: a 64-bit immediate load of a map's descriptor.
const PSEUDO_MAP_FD: u8 = 1;
/// `BPF_PSEUDO_KFUNC_CALL`: a call whose immediate is a kernel function's BTF id.
const PSEUDO_KFUNC_CALL: u8 = 2;

/// One 8-byte instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, dst, src, off, imm }
    }

    /// The instruction as the kernel reads it (little-endian).
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// Encodes a program.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(Insn::encode).collect()
}

/// A jump target, bound to a position with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// A program being written.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    jumps: Vec<(usize, Label)>,
}

/// A label used but never bound, or a jump too far for its 16-bit offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    #[error("label {0} is used but never bound")]
    Unbound(usize),
    #[error("the jump at instruction {0} is out of range")]
    OutOfRange(usize),
}

impl Asm {
    /// An empty program.
    pub fn new() -> Asm {
        Asm::default()
    }

    /// A new, not yet bound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }

    /// `dst = src` (64-bit).
    pub fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(Insn::new(ALU64 | MOV | X, dst as u8, src as u8, 0, 0))
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(ALU64 | MOV | K, dst as u8, 0, 0, imm))
    }

    /// `dst += imm` (64-bit).
    pub fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(ALU64 | ADD | K, dst as u8, 0, 0, imm))
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(Insn::new(LDX | MEM | size.bits(), dst as u8, src as u8, off, 0))
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(Insn::new(STX | MEM | size.bits(), dst as u8, src as u8, off, 0))
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(Insn::new(ST | MEM | size.bits(), dst as u8, 0, off, imm))
    }

    /// `dst = the map whose descriptor is fd` (two instruction slots).
    pub fn load_map_fd(&mut self, dst: Reg, fd: i32) -> &mut Self {
        self.push(Insn::new(LD | IMM | Size::DW.bits(), dst as u8, PSEUDO_MAP_FD, 0, fd));
        self.push(Insn::new(0, 0, 0, 0, 0))
    }

    /// `if reg <cond> imm goto target`.
    pub fn jump_if(&mut self, cond: Cond, reg: Reg, imm: i32, target: Label) -> &mut Self {
        self.jumps.push((self.insns.len(), target));
        self.push(Insn::new(JMP | cond.op() | K, reg as u8, 0, 0, imm))
    }

    /// `if a <cond> b goto target`.
    pub fn jump_if_reg(&mut self, cond: Cond, a: Reg, b: Reg, target: Label) -> &mut Self {
        self.jumps.push((self.insns.len(), target));
        self.push(Insn::new(JMP | cond.op() | X, a as u8, b as u8, 0, 0))
    }

    /// Calls helper function `id` (`enum bpf_func_id`).
    pub fn call(&mut self, id: i32) -> &mut Self {
        self.push(Insn::new(JMP | CALL, 0, 0, 0, id))
    }

    /// Calls the kernel function whose BTF id (in vmlinux) is `btf_id`.
    pub fn call_kfunc(&mut self, btf_id: u32) -> &mut Self {
        self.push(Insn::new(JMP | CALL, 0, PSEUDO_KFUNC_CALL, 0, btf_id as i32))
    }

    /// Returns R0.
    pub fn exit(&mut self) -> &mut Self {
        self.push(Insn::new(JMP | EXIT, 0, 0, 0, 0))
    }

    /// The instructions, with every jump's offset resolved.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for (at, label) in &self.jumps {
            let target = self.labels[label.0].ok_or(AsmError::Unbound(label.0))?;
            let off = target as i64 - (*at as i64 + 1);
            self.insns[*at].off = i16::try_from(off).map_err(|_| AsmError::OutOfRange(*at))?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_kernel_reads_it() {
        // The kernel's own examples: BPF_MOV64_IMM(R0, 0) and BPF_EXIT_INSN().
        let mut a = Asm::new();
        a.mov_imm(Reg::R0, 0).exit();
        let bytes = encode(&a.finish().unwrap());
        assert_eq!(bytes, [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
        // BPF_LDX_MEM(BPF_W, R2, R6, 76): registers packed src << 4 | dst.
        let mut a = Asm::new();
        a.load(Size::W, Reg::R2, Reg::R6, 76);
        assert_eq!(encode(&a.finish().unwrap()), [0x61, 0x62, 76, 0, 0, 0, 0, 0]);
        // BPF_LD_MAP_FD(R1, 5): two slots, pseudo source 1.
        let mut a = Asm::new();
        a.load_map_fd(Reg::R1, 5);
        assert_eq!(encode(&a.finish().unwrap()), [0x18, 0x11, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn jumps_resolve_forward_over_wide_instructions() {
        let mut a = Asm::new();
        let done = a.label();
        a.jump_if(Cond::Ne, Reg::R2, 8, done).load_map_fd(Reg::R1, 3).mov_imm(Reg::R0, 1);
        a.bind(done);
        a.exit();
        let insns = a.finish().unwrap();
        assert_eq!(insns[0].off, 3, "over the two slots of the map load and the move");
        assert_eq!(insns[0].code, 0x55);
    }

    #[test]
    fn unbound_labels_are_an_error() {
        let mut a = Asm::new();
        let nowhere = a.label();
        a.jump_if(Cond::Eq, Reg::R0, 0, nowhere);
        assert_eq!(a.finish().unwrap_err(), AsmError::Unbound(0));
    }
}
