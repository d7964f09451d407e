//! The numbers of the nf_tables netlink protocol (`linux/netfilter/nf_tables.h`,
//! `linux/netfilter/nfnetlink.h`, `linux/netlink.h`) and of libnftnl / `nft` (user data, data
//! types) that the encoder, the parser and their callers use. Attribute numbers of expressions
//! are written where the expression is encoded ([`super::MsgBuf`]'s expression methods).

// Netlink.
/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP`.
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND`.
pub const NLM_F_APPEND: u16 = 0x800;
/// `NLM_F_CAPPED` (on an error): only the request's header is echoed.
pub const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` (on an error): extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLA_F_NESTED`.
pub const NLA_F_NESTED: u16 = 0x8000;

// nfnetlink.
/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN`.
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

// nf_tables messages.
/// `NFT_MSG_NEWTABLE`.
pub const NFT_MSG_NEWTABLE: u16 = 0;
/// `NFT_MSG_GETTABLE`.
pub const NFT_MSG_GETTABLE: u16 = 1;
/// `NFT_MSG_DELTABLE`.
pub const NFT_MSG_DELTABLE: u16 = 2;
/// `NFT_MSG_NEWCHAIN`.
pub const NFT_MSG_NEWCHAIN: u16 = 3;
/// `NFT_MSG_GETCHAIN`.
pub const NFT_MSG_GETCHAIN: u16 = 4;
/// `NFT_MSG_DELCHAIN`.
pub const NFT_MSG_DELCHAIN: u16 = 5;
/// `NFT_MSG_NEWRULE`.
pub const NFT_MSG_NEWRULE: u16 = 6;
/// `NFT_MSG_GETRULE`.
pub const NFT_MSG_GETRULE: u16 = 7;
/// `NFT_MSG_DELRULE`.
pub const NFT_MSG_DELRULE: u16 = 8;
/// `NFT_MSG_NEWSET`.
pub const NFT_MSG_NEWSET: u16 = 9;
/// `NFT_MSG_GETSET`.
pub const NFT_MSG_GETSET: u16 = 10;
/// `NFT_MSG_DELSET`.
pub const NFT_MSG_DELSET: u16 = 11;
/// `NFT_MSG_NEWSETELEM`.
pub const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_GETSETELEM`.
pub const NFT_MSG_GETSETELEM: u16 = 13;
/// `NFT_MSG_DELSETELEM`.
pub const NFT_MSG_DELSETELEM: u16 = 14;

// Families (`NFPROTO_*`).
/// `NFPROTO_INET`.
pub const FAMILY_INET: u8 = 1;
/// `NFPROTO_IPV4`.
pub const FAMILY_IPV4: u8 = 2;
/// `NFPROTO_IPV6`.
pub const FAMILY_IPV6: u8 = 10;

// Hooks (`NF_INET_*`).
/// `NF_INET_PRE_ROUTING`.
pub const HOOK_PREROUTING: u32 = 0;
/// `NF_INET_LOCAL_IN`.
pub const HOOK_INPUT: u32 = 1;
/// `NF_INET_FORWARD`.
pub const HOOK_FORWARD: u32 = 2;
/// `NF_INET_LOCAL_OUT`.
pub const HOOK_OUTPUT: u32 = 3;
/// `NF_INET_POST_ROUTING`.
pub const HOOK_POSTROUTING: u32 = 4;

// Table, chain, rule attributes.
/// `NFTA_TABLE_NAME`.
pub const NFTA_TABLE_NAME: u16 = 1;
/// `NFTA_TABLE_FLAGS`.
pub const NFTA_TABLE_FLAGS: u16 = 2;
/// `NFTA_TABLE_USE`.
pub const NFTA_TABLE_USE: u16 = 3;
/// `NFTA_CHAIN_TABLE`.
pub const NFTA_CHAIN_TABLE: u16 = 1;
/// `NFTA_CHAIN_NAME`.
pub const NFTA_CHAIN_NAME: u16 = 3;
/// `NFTA_CHAIN_HOOK`.
pub const NFTA_CHAIN_HOOK: u16 = 4;
/// `NFTA_CHAIN_POLICY`.
pub const NFTA_CHAIN_POLICY: u16 = 5;
/// `NFTA_CHAIN_TYPE`.
pub const NFTA_CHAIN_TYPE: u16 = 7;
/// `NFTA_HOOK_HOOKNUM`.
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
/// `NFTA_HOOK_PRIORITY`.
pub const NFTA_HOOK_PRIORITY: u16 = 2;
/// `NFTA_RULE_TABLE`.
pub const NFTA_RULE_TABLE: u16 = 1;
/// `NFTA_RULE_CHAIN`.
pub const NFTA_RULE_CHAIN: u16 = 2;
/// `NFTA_RULE_HANDLE`.
pub const NFTA_RULE_HANDLE: u16 = 3;
/// `NFTA_RULE_EXPRESSIONS`.
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `NFTA_RULE_USERDATA`.
pub const NFTA_RULE_USERDATA: u16 = 7;

// Set and element attributes.
/// `NFTA_SET_TABLE`.
pub const NFTA_SET_TABLE: u16 = 1;
/// `NFTA_SET_NAME`.
pub const NFTA_SET_NAME: u16 = 2;
/// `NFTA_SET_FLAGS`.
pub const NFTA_SET_FLAGS: u16 = 3;
/// `NFTA_SET_KEY_TYPE`.
pub const NFTA_SET_KEY_TYPE: u16 = 4;
/// `NFTA_SET_KEY_LEN`.
pub const NFTA_SET_KEY_LEN: u16 = 5;
/// `NFTA_SET_DATA_TYPE`.
pub const NFTA_SET_DATA_TYPE: u16 = 6;
/// `NFTA_SET_DATA_LEN`.
pub const NFTA_SET_DATA_LEN: u16 = 7;
/// `NFTA_SET_DESC`.
pub const NFTA_SET_DESC: u16 = 9;
/// `NFTA_SET_ID`.
pub const NFTA_SET_ID: u16 = 10;
/// `NFTA_SET_TIMEOUT`.
pub const NFTA_SET_TIMEOUT: u16 = 11;
/// `NFTA_SET_USERDATA`.
pub const NFTA_SET_USERDATA: u16 = 13;
/// `NFTA_SET_DESC_SIZE`.
pub const NFTA_SET_DESC_SIZE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_TABLE`.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_SET_ELEM_LIST_SET_ID`.
pub const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
/// `NFTA_SET_ELEM_KEY`.
pub const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_SET_ELEM_DATA`.
pub const NFTA_SET_ELEM_DATA: u16 = 2;
/// `NFTA_SET_ELEM_FLAGS`.
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;

// Lists, expressions, data.
/// `NFTA_LIST_ELEM`.
pub const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_EXPR_NAME`.
pub const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`.
pub const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`.
pub const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE`.
pub const NFTA_VERDICT_CODE: u16 = 1;
/// `NFTA_VERDICT_CHAIN`.
pub const NFTA_VERDICT_CHAIN: u16 = 2;

// Set flags.
/// `NFT_SET_ANONYMOUS`.
pub const NFT_SET_ANONYMOUS: u32 = 0x1;
/// `NFT_SET_CONSTANT`.
pub const NFT_SET_CONSTANT: u32 = 0x2;
/// `NFT_SET_INTERVAL`.
pub const NFT_SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_MAP`.
pub const NFT_SET_MAP: u32 = 0x8;
/// `NFT_SET_TIMEOUT`.
pub const NFT_SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_EVAL`.
pub const NFT_SET_EVAL: u32 = 0x20;
/// `NFT_SET_ELEM_INTERVAL_END`.
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
/// `NFT_DATA_VERDICT`: the data type of verdict maps.
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

// nft's data types (`TYPE_*`), for set keys.
/// `TYPE_INTEGER`.
pub const TYPE_INTEGER: u32 = 4;
/// `TYPE_IPADDR`.
pub const TYPE_IPADDR: u32 = 7;
/// `TYPE_IP6ADDR`.
pub const TYPE_IP6ADDR: u32 = 8;
/// `TYPE_INET_PROTOCOL`.
pub const TYPE_INET_PROTOCOL: u32 = 12;
/// `TYPE_INET_SERVICE`.
pub const TYPE_INET_SERVICE: u32 = 13;

// Verdict codes.
/// `NF_DROP`.
pub const NF_DROP: i32 = 0;
/// `NF_ACCEPT`.
pub const NF_ACCEPT: i32 = 1;
/// `NFT_JUMP`.
pub const NFT_JUMP: i32 = -3;
/// `NFT_GOTO`.
pub const NFT_GOTO: i32 = -4;
/// `NFT_RETURN`.
pub const NFT_RETURN: i32 = -5;

// Registers.
/// `NFT_REG_VERDICT`.
pub const REG_VERDICT: u32 = 0;
/// `NFT_REG_1` (16 bytes).
pub const REG_1: u32 = 1;
/// `NFT_REG_2` (16 bytes).
pub const REG_2: u32 = 2;
/// `NFT_REG32_01` (4 bytes, the second word of `NFT_REG_1`).
pub const REG32_01: u32 = 9;
/// `NFT_REG32_02`.
pub const REG32_02: u32 = 10;
/// `NFT_REG32_05` (the second word of `NFT_REG_2`).
pub const REG32_05: u32 = 13;

// Expression keys and bases.
/// `NFT_PAYLOAD_NETWORK_HEADER`.
pub const PAYLOAD_NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
pub const PAYLOAD_TRANSPORT: u32 = 2;
/// `NFT_META_MARK`.
pub const META_MARK: u32 = 3;
/// `NFT_META_NFPROTO`.
pub const META_NFPROTO: u32 = 15;
/// `NFT_META_L4PROTO`.
pub const META_L4PROTO: u32 = 16;
/// `NFT_CT_STATE`.
pub const CT_STATE: u32 = 0;

/// libnftnl's user-data type of a rule comment (`NFTNL_UDATA_RULE_COMMENT`).
pub const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
