#!/bin/bash
{#- executorlib_cache SLURM batch template (jinja2, rendered by pysqa).
    Variables: job_name, working_directory, cores (-> ntasks), command (full
    command line, composed by the caller), and optional run_time_max (SECONDS),
    memory_max (GB number, or a string with unit such as "1500M"),
    dependency_list (job ids), threads_per_core, gpus_per_core, num_nodes,
    partition, exclusive, slurm_cmd_args (list of extra sbatch options),
    stdout_path, stderr_path.  Unset/None options are omitted so that the
    cluster defaults apply. #}
#SBATCH --job-name={{ job_name }}
#SBATCH --chdir={{ working_directory }}
#SBATCH --ntasks={{ cores }}
{%- if threads_per_core %}
#SBATCH --cpus-per-task={{ threads_per_core }}
{%- endif %}
{%- if gpus_per_core %}
#SBATCH --gpus-per-task={{ gpus_per_core }}
{%- endif %}
{%- if num_nodes %}
#SBATCH --nodes={{ num_nodes }}
{%- endif %}
{%- if run_time_max %}
#SBATCH --time={{ [1, (run_time_max / 60) | round(0, 'ceil') | int] | max }}
{%- endif %}
{%- if memory_max %}
{%- if memory_max is number %}
{%- if memory_max == memory_max | int %}
#SBATCH --mem={{ memory_max | int }}G
{%- else %}
#SBATCH --mem={{ (memory_max * 1024) | round(0, 'ceil') | int }}M
{%- endif %}
{%- else %}
#SBATCH --mem={{ memory_max }}
{%- endif %}
{%- endif %}
{%- if partition %}
#SBATCH --partition={{ partition }}
{%- endif %}
{%- if exclusive %}
#SBATCH --exclusive
{%- endif %}
{%- if dependency_list %}
#SBATCH --dependency=afterok:{{ dependency_list | join(':') }}
#SBATCH --kill-on-invalid-dep=yes
{%- endif %}
{%- if stdout_path %}
#SBATCH --output={{ stdout_path }}
{%- endif %}
{%- if stderr_path %}
#SBATCH --error={{ stderr_path }}
{%- endif %}
{%- if slurm_cmd_args %}
{%- if slurm_cmd_args is string %}
#SBATCH {{ slurm_cmd_args }}
{%- else %}
{%- for arg in slurm_cmd_args %}
#SBATCH {{ arg }}
{%- endfor %}
{%- endif %}
{%- endif %}

{{ command }}
