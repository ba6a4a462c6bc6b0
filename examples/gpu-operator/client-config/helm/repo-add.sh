helm repo add nvidia-charts https://mirror.example:8443/helm/nvidia-charts/ --ca-file /etc/ferry/ca.pem
