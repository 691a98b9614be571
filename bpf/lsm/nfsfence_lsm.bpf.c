// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsfence's LSM fallback: refuses, with -EDQUOT, every way a regular file under a full
 * quota tree can grow on a local NFS mount, decided from the file's own ancestry. For
 * clients whose NFS traffic the TC programs cannot read or rewrite (sec=krb5p, sec=krb5i,
 * xprtsec=tls) or hosts where a file-level hook is preferred. Needs CONFIG_BPF_LSM with
 * `bpf` in the active LSM list (Debian 12's 6.1 kernel has both).
 *
 * Hooks (6.1 signatures; which way each growth path reaches them: docs/architecture.md):
 *   file_permission   MAY_WRITE / MAY_APPEND: write, pwrite, writev, splice, sendfile,
 *                     copy_file_range (destination), fallocate (vfs_fallocate checks it)
 *   mmap_file         PROT_WRITE on a MAP_SHARED mapping
 *   file_mprotect     adding PROT_WRITE to a shared file mapping
 *   inode_setattr     ATTR_SIZE beyond i_size (truncate/ftruncate growing a file); an
 *                     O_TRUNC open or a shrinking truncate is never refused
 *   file_free_security  the last fput of a file opened for writing: charges the growth of
 *                     its last write (no refusal)
 *   inode_unlink, inode_rename, inode_link: mark trees for a rescan; rename/link also end
 *                     the cached tree decisions (lsm_gen)
 *
 * Tree membership: a walk up d_parent from the file's dentry (at most NFSF_LSM_MAX_DEPTH
 * steps) to a dentry whose (s_dev, i_ino) is a tree root. The result is cached in inode
 * storage with the generation and the dentry it was decided for, so the common case is one
 * storage lookup, and a hard link in another tree is decided on its own.
 *
 * Usage: the agent's statx scan sets lsm_trees[t].usage (and each file's charged size);
 * the hooks add each file's i_size growth since it was last charged (kept in the inode's
 * storage, lsm_cache) and refuse while usage >= limit, without waiting for the agent. What passes beyond the limit: the write that crosses it (one per
 * writer), since file_permission runs before the write and sees the size it leaves behind
 * only at the next call.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "nfsfence_abi.h"

#define NFSF_EDQUOT 122
#define NFSF_MAY_WRITE 0x2
#define NFSF_MAY_APPEND 0x8
#define NFSF_S_IFMT 0170000
#define NFSF_S_IFREG 0100000
#define NFSF_PROT_WRITE 0x2
#define NFSF_MAP_TYPE 0x0f
#define NFSF_MAP_SHARED 0x01
#define NFSF_MAP_SHARED_VALIDATE 0x03
#define NFSF_VM_SHARED 0x08
#define NFSF_ATTR_SIZE (1u << 3)
#define NFSF_FMODE_WRITE 0x2
#define NFSF_NFS_SUPER_MAGIC 0x6969

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFSF_MAX_TREES);
	__type(key, __u32);
	__type(value, __u32);
} lsm_devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFSF_MAX_TREES);
	__type(key, struct nfsf_lsm_ino);
	__type(value, __u32);
} lsm_roots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NFSF_MAX_TREES);
	__type(key, __u32);
	__type(value, struct nfsf_lsm_tree);
} lsm_trees SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct nfsf_lsm_inode);
} lsm_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lsm_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NFSF_L_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lsm_counters SEC(".maps");

static __always_inline void count_n(__u32 c, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&lsm_counters, &c);

	if (v)
		*v += n;
}

static __always_inline void count(__u32 c)
{
	count_n(c, 1);
}

static __always_inline __u64 gen_now(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&lsm_gen, &zero);

	return g ? *g : 0;
}

static __always_inline void gen_bump(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&lsm_gen, &zero);

	if (g)
		__sync_fetch_and_add(g, 1);
	count(NFSF_L_GEN_BUMPS);
}

/* The tree root among d and its ancestors (0: none). */
static __always_inline __u32 walk_up(struct dentry *d, __u32 dev)
{
	struct nfsf_lsm_ino key = {.dev = dev};
	struct dentry *cur = d;

	count(NFSF_L_WALKS);
	for (int i = 0; i < NFSF_LSM_MAX_DEPTH; i++) {
		struct inode *ci = cur->d_inode;
		struct dentry *parent;
		__u32 *t;

		if (ci) {
			key.ino = ci->i_ino;
			t = bpf_map_lookup_elem(&lsm_roots, &key);
			if (t)
				return *t;
		}
		parent = cur->d_parent;
		if (!parent || parent == cur)
			return 0; /* the superblock's root: in no tree */
		cur = parent;
	}
	count(NFSF_L_TOO_DEEP);
	return 0;
}

/* s_dev of inode when its superblock holds a tree root, else 0. */
static __always_inline __u32 tree_dev(struct inode *inode)
{
	__u32 dev;

	if (!inode)
		return 0;
	dev = inode->i_sb->s_dev;
	return bpf_map_lookup_elem(&lsm_devs, &dev) ? dev : 0;
}

/* The inode's storage with its tree decided for the file reached through dentry d; NULL
 * when the inode is no regular file on an NFS superblock (or storage failed). A file of any
 * other filesystem costs two field reads; an NFS file whose tree was decided, one storage
 * lookup. */
static __always_inline struct nfsf_lsm_inode *inode_of(struct dentry *d, struct inode *inode)
{
	struct nfsf_lsm_inode *c;
	__u32 dev;
	__u64 gen;

	if (!inode || (inode->i_mode & NFSF_S_IFMT) != NFSF_S_IFREG ||
	    inode->i_sb->s_magic != NFSF_NFS_SUPER_MAGIC)
		return 0;
	c = bpf_inode_storage_get(&lsm_cache, inode, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c) {
		count(NFSF_L_STORAGE_FAIL);
		return 0;
	}
	gen = gen_now();
	if (!(c->flags & NFSF_LSM_DECIDED) || c->gen != gen || c->dentry != (__u64)d) {
		dev = inode->i_sb->s_dev;
		c->tree = bpf_map_lookup_elem(&lsm_devs, &dev) ? walk_up(d, dev) : 0;
		c->gen = gen;
		c->dentry = (__u64)d;
		c->flags |= NFSF_LSM_DECIDED;
	}
	return c;
}

/* i_size growth since the inode was last charged goes to the tree's usage. An inode seen
 * for the first time starts from its current size (the agent's scan counted it). */
static __always_inline void charge(struct inode *inode, struct nfsf_lsm_inode *c, struct nfsf_lsm_tree *t)
{
	__s64 size = inode->i_size, delta;

	if (!(c->flags & NFSF_LSM_CHARGED)) {
		c->charged = size;
		c->flags |= NFSF_LSM_CHARGED;
		return;
	}
	delta = size - c->charged;
	if (!delta)
		return;
	c->charged = size;
	__sync_fetch_and_add(&t->usage, delta);
	if (delta > 0)
		count_n(NFSF_L_GROWTH_BYTES, (__u64)delta);
	t->dirty = 1;
}

static __always_inline int full(struct nfsf_lsm_tree *t)
{
	return t->limit && t->usage >= (__s64)t->limit;
}

/* The tree of the file reached through d, with its inode's storage in *cp; NULL when the
 * file is in no tree. */
static __always_inline struct nfsf_lsm_tree *tree_of_file(struct dentry *d, struct inode *inode,
							  struct nfsf_lsm_inode **cp)
{
	struct nfsf_lsm_inode *c = inode_of(d, inode);
	__u32 id;

	if (!c)
		return 0;
	id = c->tree;
	if (!id) {
		count(NFSF_L_NO_TREE);
		return 0;
	}
	*cp = c;
	return bpf_map_lookup_elem(&lsm_trees, &id);
}

/* Charge what the file grew, then refuse (refused_counter) if its tree is full. */
static __always_inline int check(struct dentry *d, struct inode *inode, __u32 refused_counter)
{
	struct nfsf_lsm_inode *c = 0;
	struct nfsf_lsm_tree *t = tree_of_file(d, inode, &c);

	if (!t || !c)
		return 0;
	charge(inode, c, t);
	if (full(t)) {
		__sync_fetch_and_add(&t->refused, 1);
		count(refused_counter);
		return -NFSF_EDQUOT;
	}
	__sync_fetch_and_add(&t->writes, 1);
	return 0;
}

/* Marks the tree above d (any kind of file, nothing cached) for a rescan. */
static __always_inline void mark_dirty(struct dentry *d, __u32 dev)
{
	__u32 id = walk_up(d, dev);
	struct nfsf_lsm_tree *t;

	if (!id)
		return;
	t = bpf_map_lookup_elem(&lsm_trees, &id);
	if (t)
		t->dirty = 1;
}

SEC("lsm/file_permission")
int BPF_PROG(nfsf_file_permission, struct file *file, int mask, int ret)
{
	if (ret || !(mask & (NFSF_MAY_WRITE | NFSF_MAY_APPEND)))
		return ret;
	return check(file->f_path.dentry, file->f_inode, NFSF_L_REFUSED_WRITE);
}

SEC("lsm/mmap_file")
int BPF_PROG(nfsf_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags, int ret)
{
	unsigned long type = flags & NFSF_MAP_TYPE;

	if (ret || !file || !(prot & NFSF_PROT_WRITE) ||
	    (type != NFSF_MAP_SHARED && type != NFSF_MAP_SHARED_VALIDATE))
		return ret;
	return check(file->f_path.dentry, file->f_inode, NFSF_L_REFUSED_MMAP);
}

SEC("lsm/file_mprotect")
int BPF_PROG(nfsf_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot,
	     int ret)
{
	struct file *file;

	if (ret || !(prot & NFSF_PROT_WRITE) || !(BPF_CORE_READ(vma, vm_flags) & NFSF_VM_SHARED))
		return ret;
	file = vma->vm_file;
	if (!file)
		return 0;
	return check(file->f_path.dentry, file->f_inode, NFSF_L_REFUSED_MMAP);
}

static __always_inline int setattr(struct dentry *dentry, struct iattr *attr)
{
	struct inode *inode = dentry->d_inode;
	struct nfsf_lsm_inode *c = 0;
	struct nfsf_lsm_tree *t;

	if (!(attr->ia_valid & NFSF_ATTR_SIZE))
		return 0;
	t = tree_of_file(dentry, inode, &c);
	if (!t)
		return 0;
	t->dirty = 1;
	if (attr->ia_size > inode->i_size && full(t)) {
		__sync_fetch_and_add(&t->refused, 1);
		count(NFSF_L_REFUSED_TRUNCATE);
		return -NFSF_EDQUOT;
	}
	return 0;
}

/* Set by the loader: 1 where the kernel's inode_setattr hook is (idmap, dentry, attr), as
 * its BTF says (6.1 has (dentry, attr)). The branch not taken is dead code to the verifier. */
const volatile __u32 nfsf_setattr_idmap = 0;

SEC("lsm/inode_setattr")
int nfsf_inode_setattr(unsigned long long *ctx)
{
	int ret;

	if (nfsf_setattr_idmap) {
		ret = (int)ctx[3];
		return ret ? ret : setattr((struct dentry *)ctx[1], (struct iattr *)ctx[2]);
	}
	ret = (int)ctx[2];
	return ret ? ret : setattr((struct dentry *)ctx[0], (struct iattr *)ctx[1]);
}

SEC("lsm/file_free_security")
int BPF_PROG(nfsf_file_free, struct file *file)
{
	struct nfsf_lsm_inode *c = 0;
	struct nfsf_lsm_tree *t;

	if (!(file->f_mode & NFSF_FMODE_WRITE))
		return 0;
	t = tree_of_file(file->f_path.dentry, file->f_inode, &c);
	if (t && c)
		charge(file->f_inode, c, t);
	return 0;
}

SEC("lsm/inode_unlink")
int BPF_PROG(nfsf_inode_unlink, struct inode *dir, struct dentry *dentry, int ret)
{
	__u32 dev = tree_dev(dir);

	if (!ret && dev)
		mark_dirty(dentry, dev);
	return ret;
}

SEC("lsm/inode_rename")
int BPF_PROG(nfsf_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry, int ret)
{
	__u32 dev = tree_dev(old_dir);

	if (ret || !dev)
		return ret;
	/* Usage moves from one tree to the other (a directory: all below it); decisions
	 * cached before the rename are stale. */
	mark_dirty(old_dentry, dev);
	mark_dirty(new_dentry, dev);
	gen_bump();
	return 0;
}

SEC("lsm/inode_link")
int BPF_PROG(nfsf_inode_link, struct dentry *old_dentry, struct inode *dir, struct dentry *new_dentry,
	     int ret)
{
	__u32 dev = tree_dev(dir);

	if (!ret && dev) {
		mark_dirty(new_dentry, dev); /* the new link's tree now holds the file too */
		gen_bump();
	}
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
