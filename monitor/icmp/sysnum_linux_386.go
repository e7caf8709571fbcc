package icmp

// The syscall package lacks SYS_SENDMMSG on 386.
const (
	sysRECVMMSG = 337
	sysSENDMMSG = 345
)
