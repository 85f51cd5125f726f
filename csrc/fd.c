/* Facts about a file descriptor a peer sent, decided from the open file itself: a path names
 * whatever is mounted there now, which a peer with its own mount namespace chooses. */
#include "memif_ct.h"

#include <errno.h>
#include <sys/vfs.h>

int64_t memif_ct_fd_fs_magic(int fd)
{
    if (fd < 0)
        return -EBADF;
    struct statfs st;
    if (fstatfs(fd, &st) != 0)
        return -errno;
    return (int64_t)(uint32_t)st.f_type; /* magics are 32-bit; f_type is a signed word */
}
