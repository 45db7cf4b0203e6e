#!/bin/bash
{#- executorlib_cache flux batch template (jinja2, rendered by pysqa; RFC 36
    directives, all with the same "# flux:" sentinel and grouped before the
    first command line).  Same variables as slurm.sh; memory_max has no flux
    equivalent and is ignored; partition maps to --queue; flux_cmd_args is a
    list of extra flux-batch options; priority is the job's --urgency. #}
# flux: --job-name={{ job_name }}
# flux: -n {{ cores }}
{%- if threads_per_core %}
# flux: -c {{ threads_per_core }}
{%- endif %}
{%- if gpus_per_core %}
# flux: -g {{ gpus_per_core }}
{%- endif %}
{%- if num_nodes %}
# flux: -N {{ num_nodes }}
{%- elif exclusive %}
# flux: -N 1
{%- endif %}
{%- if exclusive %}
# flux: --exclusive
{%- endif %}
{%- if run_time_max %}
# flux: -t {{ [1, run_time_max | round(0, 'ceil') | int] | max }}s
{%- endif %}
{%- if partition %}
# flux: --queue={{ partition }}
{%- endif %}
{%- if priority is defined and priority is not none %}
# flux: --urgency={{ priority }}
{%- endif %}
{%- if dependency_list %}
{%- for jobid in dependency_list %}
# flux: --dependency=afterok:{{ jobid }}
{%- endfor %}
{%- endif %}
{%- if stdout_path %}
# flux: --output={{ stdout_path }}
{%- endif %}
{%- if stderr_path %}
# flux: --error={{ stderr_path }}
{%- endif %}
{%- if flux_cmd_args %}
{%- if flux_cmd_args is string %}
# flux: {{ flux_cmd_args }}
{%- else %}
{%- for arg in flux_cmd_args %}
# flux: {{ arg }}
{%- endfor %}
{%- endif %}
{%- endif %}

{{ command }}
