/* relay_jobsctl: `shir-relay jobs list|show|cancel`, a client of the running
 * relay's admin address (/jobs, docs/copy.md). */
#ifndef SHIR_RELAY_JOBSCTL_H
#define SHIR_RELAY_JOBSCTL_H

/* argv after "jobs"; returns the exit code (0 done, 1 failed, 2 usage). */
int relay_jobsctl(const char *conf_path, int argc, char **argv);

#endif
