#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "node/admin/machinekey.h"

static int
machinekey_read(const char *path, uint8_t key[MACHINEKEY_LEN], struct shir_error *err)
{
	uint8_t buf[MACHINEKEY_LEN + 1];
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return shir_error_set(err, SHIR_ENOENT, "%s does not exist", path);
		return shir_error_set(err, errno == EACCES ? SHIR_EPERM : SHIR_EIO,
		    "cannot open the machine key %s: %s (run as root or as shird's user)", path,
		    strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = shir_error_set(err, SHIR_EIO, "the machine key %s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		rc = shir_error_set(err, SHIR_EPERM,
		    "the machine key %s has mode %04o: group or others may read it, so every "
		    "secret on this node may be exposed; run `chmod 600 %s`, and consider "
		    "rotating the node key and credentials", path, (unsigned)(st.st_mode & 07777),
		    path);
		goto out;
	}
	n = read(fd, buf, sizeof buf);
	if (n == MACHINEKEY_LEN)
		memcpy(key, buf, MACHINEKEY_LEN);
	else {
		rc = shir_error_set(err, SHIR_ECRYPTO,
		    "the machine key %s must hold exactly %d bytes; it holds %s", path,
		    MACHINEKEY_LEN, n < 0 ? "unreadable data" : n < MACHINEKEY_LEN ? "fewer" : "more");
	}
	OPENSSL_cleanse(buf, sizeof buf);
out:
	close(fd);
	return rc;
}

int
machinekey_load(const char *state_dir, int create, uint8_t key[MACHINEKEY_LEN],
    struct shir_error *err)
{
	char path[PATH_MAX];
	int rc;

	if ((size_t)snprintf(path, sizeof path, "%s/%s", state_dir, MACHINEKEY_FILE) >= sizeof path)
		return shir_error_set(err, SHIR_EINVAL, "state_dir is too long");
	rc = machinekey_read(path, key, err);
	if (rc != SHIR_ENOENT || !create)
		return rc;
	if ((rc = atomicfile_mkdir(state_dir, err)) != 0)
		return rc;
	if (RAND_bytes(key, MACHINEKEY_LEN) != 1)
		return shir_error_set(err, SHIR_ECRYPTO, "the random generator failed");
	/* link(2) semantics: never replace a key another process just created */
	{
		char tmp[PATH_MAX + 16];
		int fd;
		ssize_t n;

		snprintf(tmp, sizeof tmp, "%s.new-%d", path, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return shir_error_set(err, errno == EACCES ? SHIR_EPERM : SHIR_EIO,
			    "cannot create the machine key %s: %s", path, strerror(errno));
		n = write(fd, key, MACHINEKEY_LEN);
		if (n != MACHINEKEY_LEN || fsync(fd) != 0) {
			close(fd);
			unlink(tmp);
			return shir_error_set(err, SHIR_EIO, "cannot write the machine key %s", path);
		}
		if (atomicfile_adopt_owner(fd, path, err) != 0) {
			close(fd);
			unlink(tmp);
			return err->code;
		}
		close(fd);
		if (link(tmp, path) != 0) {
			int e = errno;

			unlink(tmp);
			if (e == EEXIST)	/* lost a race: use the other key */
				return machinekey_read(path, key, err);
			return shir_error_set(err, SHIR_EIO, "cannot create the machine key %s: %s",
			    path, strerror(e));
		}
		unlink(tmp);
		if (atomicfile_fsync_dir(path, err) != 0)
			return err->code;
	}
	log_info("admin", "event=machinekey.created path=%s", log_q(path));
	return 0;
}
