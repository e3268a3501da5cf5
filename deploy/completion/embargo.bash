# bash completion for embargo(8): commands, subcommands, each command's
# options, and the values of --format, --mode and --action.

_embargo() {
  local cur prev words cword
  _init_completion || return

  local commands="run check config ca rules report lists export reload status version"
  local common="--config --listen --intercept --tproxy --resolver --now --monitor --log --user
                --verbose --help"
  local cmd="" sub="" i
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
    -c | --config | -l | --listen | --intercept | --tproxy | -r | --resolver | -n | --now | \
      -o | --log | -u | --user)
      ((i++))
      ;;
    -*) ;;
    *)
      if [[ -z $cmd ]]; then
        cmd=${words[i]}
      elif [[ -z $sub ]]; then
        sub=${words[i]}
      fi
      ;;
    esac
  done

  case "$prev" in
  -c | --config | -o | --log | --file | --token-file | --key | --pubkey | --output)
    _filedir
    return
    ;;
  --dir)
    _filedir -d
    return
    ;;
  --format)
    case "$cmd" in
    check) COMPREPLY=($(compgen -W "text csv json" -- "$cur")) ;;
    rules) COMPREPLY=($(compgen -W "nft iptables" -- "$cur")) ;;
    export) COMPREPLY=($(compgen -W "rpz unbound dnsmasq hosts nft-set squid" -- "$cur")) ;;
    report) COMPREPLY=($(compgen -W "table csv json html" -- "$cur")) ;;
    esac
    return
    ;;
  --mode)
    COMPREPLY=($(compgen -W "intercept tproxy" -- "$cur"))
    return
    ;;
  --action)
    COMPREPLY=($(compgen -W "deny log any" -- "$cur"))
    return
    ;;
  -l | --listen | --intercept | --tproxy | -r | --resolver | -n | --now | -u | --user | --sni | \
    --ja4 | --admin | --uid | --subject | --permit | --days | --serial | --vendor | --category | \
    --since | --until)
    return
    ;;
  esac

  local opts=""
  case "$cmd" in
  "")
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$common" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return
    ;;
  run) opts="$common" ;;
  check) opts="$common --sni --ja4 --no-resolve --file --format" ;;
  config)
    if [[ -z $sub ]]; then
      COMPREPLY=($(compgen -W "check show keys" -- "$cur"))
    elif [[ $sub == check ]]; then
      _filedir '@(yaml|yml)'
    elif [[ $sub == keys ]]; then
      COMPREPLY=($(compgen -W "config vendor-list" -- "$cur"))
    fi
    return
    ;;
  ca)
    if [[ -z $sub ]]; then
      COMPREPLY=($(compgen -W "init show" -- "$cur"))
    elif [[ $sub == init ]]; then
      COMPREPLY=($(compgen -W "--dir --subject --permit --days" -- "$cur"))
    else
      _filedir -d
    fi
    return
    ;;
  rules) opts="--config --format --mode --sidecar --ipv6 --uid" ;;
  report) opts="--config --since --until --vendor --format --unmatched --help" ;;
  lists)
    case "$sub" in
    "") COMPREPLY=($(compgen -W "keygen sign verify fetch" -- "$cur")) ;;
    keygen) COMPREPLY=($(compgen -W "--key --pubkey" -- "$cur")) ;;
    sign) opts="--key --serial --output" ;;
    verify) opts="--pubkey" ;;
    fetch) COMPREPLY=($(compgen -W "--config" -- "$cur")) ;;
    esac
    [[ -z $opts ]] && return
    ;;
  export) opts="--config --now --format --vendor --category --action" ;;
  reload) opts="--config --admin --token-file" ;;
  status) opts="--config --admin --token-file --live" ;;
  *) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    _filedir
  fi
}
complete -F _embargo embargo
