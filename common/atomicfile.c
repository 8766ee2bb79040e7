#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/atomicfile.h"

int
atomicfile_fsync_dir(const char *path, struct shir_error *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return shir_error_set(err, SHIR_EIO, "cannot open the directory %s: %s", dir,
		    strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL)
		rc = shir_error_set(err, SHIR_EIO, "fsync of the directory %s failed: %s", dir,
		    strerror(errno));
	close(fd);
	return rc;
}

int
atomicfile_adopt_owner(int fd, const char *path, struct shir_error *err)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	struct stat dst;

	if (geteuid() != 0)
		return 0;
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (stat(dir, &dst) != 0 || (dst.st_uid == 0 && dst.st_gid == 0))
		return 0;
	if (fchown(fd, dst.st_uid, dst.st_gid) != 0)
		return shir_error_set(err, SHIR_EIO, "cannot give %s to the owner of %s: %s", path,
		    dir, strerror(errno));
	return 0;
}

int
atomicfile_write(const char *path, const void *data, size_t len, mode_t mode,
    struct shir_error *err)
{
	char tmp[PATH_MAX];
	const unsigned char *p = data;
	unsigned char rnd[6];
	size_t off = 0;
	int fd = -1, rc = 0;

	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return shir_error_set(err, SHIR_ECRYPTO, "the random generator failed");
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0],
	    rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) >= sizeof tmp)
		return shir_error_set(err, SHIR_EINVAL, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return shir_error_set(err, errno == EACCES ? SHIR_EPERM : SHIR_EIO,
		    "cannot create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		rc = shir_error_set(err, SHIR_EIO, "cannot set the mode of %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if ((rc = atomicfile_adopt_owner(fd, path, err)) != 0)
		goto out;
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = shir_error_set(err, SHIR_EIO, "cannot write %s: %s", tmp,
			    n < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = shir_error_set(err, SHIR_EIO, "fsync of %s failed: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = shir_error_set(err, SHIR_EIO, "cannot close %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = shir_error_set(err, SHIR_EIO, "cannot rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto out;
	}
	return atomicfile_fsync_dir(path, err);
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int
atomicfile_read(const char *path, size_t max, char **out, size_t *len, struct shir_error *err)
{
	struct stat st;
	char *buf = NULL;
	size_t off = 0;
	int fd, rc = 0;

	*out = NULL;
	if (len != NULL)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return shir_error_set(err, SHIR_ENOENT, "%s does not exist", path);
		return shir_error_set(err, errno == EACCES ? SHIR_EPERM : SHIR_EIO,
		    "cannot open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = shir_error_set(err, SHIR_EIO, "%s is not a regular file", path);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		rc = shir_error_set(err, SHIR_ETOOBIG, "%s is larger than %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = shir_error_set(err, SHIR_EIO, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	*out = buf;
	buf = NULL;
	if (len != NULL)
		*len = off;
out:
	if (buf != NULL)
		atomicfile_secret_free(buf, (size_t)st.st_size);
	close(fd);
	return rc;
}

void
atomicfile_secret_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

int
atomicfile_mkdir(const char *dir, struct shir_error *err)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
			return shir_error_set(err, SHIR_EIO, "%s exists and is not a directory", dir);
		return 0;
	}
	return shir_error_set(err, errno == EACCES ? SHIR_EPERM : SHIR_EIO,
	    "cannot create the state directory %s: %s", dir, strerror(errno));
}
